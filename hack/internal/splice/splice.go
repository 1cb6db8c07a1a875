// Package splice keeps a generated section of a hand-written file (a table in a Markdown page)
// between two marker lines, and tells whether it is current.
package splice

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Cell escapes s for a cell of a generated Markdown table.
func Cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// File puts content between the lines begin and end of the file at path. With check, it writes
// nothing and returns an error when the file does not already hold content there; regen names
// the command that regenerates it, for that error.
func File(path, begin, end string, content []byte, check bool, regen string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i < 0 || j < i {
		return fmt.Errorf("%s: want the markers %q and %q, in that order", path, begin, end)
	}
	var b bytes.Buffer
	b.Write(old[:i+len(begin)])
	b.WriteByte('\n')
	b.Write(content)
	b.Write(old[j:])
	if bytes.Equal(b.Bytes(), old) {
		return nil
	}
	if check {
		return fmt.Errorf("%s: the generated section is stale: run `%s`", path, regen)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
