package testutil

import (
	"fmt"
	"os"
	"strings"
)

// CodeBlock is a fenced code block of a Markdown page: the line of its opening fence, the
// fence's info string (the language) and its text.
type CodeBlock struct {
	Line int
	Lang string
	Text string
}

// ParseMarkdown splits the Markdown page at path into its fenced code blocks and its prose (the
// lines outside them), as the docs' tests read them.
func ParseMarkdown(path string) (blocks []CodeBlock, prose []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var cur *CodeBlock
	for i, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &CodeBlock{Line: i + 1, Lang: strings.TrimPrefix(trimmed, "```")}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Text += line + "\n"
		default:
			prose = append(prose, line)
		}
	}
	if cur != nil {
		return nil, nil, fmt.Errorf("%s:%d: a code block is never closed", path, cur.Line)
	}
	return blocks, prose, nil
}
