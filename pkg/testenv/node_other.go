//go:build !linux

package testenv

import (
	"context"
	"errors"
)

// node is Linux-only: kubelet and containerd run there.
type node struct{}

var errNoNode = errors.New("a node (Options.Node) runs on Linux only")

func (e *Env) startNodeNetwork(context.Context, Options) error { return errNoNode }
func (e *Env) startNode(context.Context, Options) error        { return errNoNode }
func (e *Env) stopNode() error                                 { return nil }
func (e *Env) releaseNode() error                              { return nil }

// ImportImage imports an OCI image archive into the node; Linux only.
func (e *Env) ImportImage(context.Context, string) error { return errNoNode }

// NodeLeftovers lists what a stopped node left on the machine; Linux only.
func (e *Env) NodeLeftovers() []string { return nil }
