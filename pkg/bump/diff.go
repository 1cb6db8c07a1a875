package bump

import (
	"bytes"
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines a hunk shows around a change, as diff -u does.
const diffContext = 3

// UnifiedDiff returns a unified diff from old to new, which must have the same number of lines
// (Rewrite never adds or removes one), as `diff -u` prints it with path under a/ and b/.
// Lines keep their endings, so a CRLF file's diff shows them.
func UnifiedDiff(path string, old, new []byte) string {
	a, b := splitLines(old), splitLines(new)
	if len(a) != len(b) {
		return fmt.Sprintf("--- a/%s\n+++ b/%s\n(the files differ in their number of lines)\n", path, path)
	}
	var changed []int
	for i := range a {
		if a[i] != b[i] {
			changed = append(changed, i)
		}
	}
	if len(changed) == 0 {
		return ""
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- a/%s\n+++ b/%s\n", path, path)
	for i := 0; i < len(changed); {
		// A hunk runs from diffContext lines before a change to diffContext lines after the
		// last change that has at most 2*diffContext unchanged lines before it, as diff -u.
		j := i
		for j+1 < len(changed) && changed[j+1]-changed[j]-1 <= 2*diffContext {
			j++
		}
		from := max(changed[i]-diffContext, 0)
		to := min(changed[j]+diffContext+1, len(a))
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", from+1, to-from, from+1, to-from)
		for k := from; k < to; k++ {
			if a[k] == b[k] {
				writeDiffLine(&out, ' ', a[k])
				continue
			}
			writeDiffLine(&out, '-', a[k])
			writeDiffLine(&out, '+', b[k])
		}
		i = j + 1
	}
	return out.String()
}

func writeDiffLine(out *strings.Builder, mark byte, line string) {
	out.WriteByte(mark)
	out.WriteString(line)
	if !strings.HasSuffix(line, "\n") {
		out.WriteString("\n\\ No newline at end of file\n")
	}
}

// splitLines splits content after each \n, keeping it.
func splitLines(content []byte) []string {
	var lines []string
	for len(content) > 0 {
		i := bytes.IndexByte(content, '\n')
		if i < 0 {
			lines = append(lines, string(content))
			break
		}
		lines = append(lines, string(content[:i+1]))
		content = content[i+1:]
	}
	return lines
}
