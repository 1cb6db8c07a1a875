//go:build tools

// Package tools pins promtool (github.com/prometheus/prometheus/cmd/promtool).
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
