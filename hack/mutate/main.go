// Command mutate breaks the code on purpose and checks that a test notices: the project's own
// mutants (mutants.go: calls removed, checks and selectors made no-ops, inputs dropped, each
// expected to turn a named test red), then gremlins' arithmetic and comparison mutants over each
// package. It works on a copy of the repository's tracked files, never on the tree itself, and
// writes docs/mutation.md. `make mutate` runs it; it is not part of `make test`.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

func main() {
	repo := flag.String("repo", ".", "The repository.")
	gremlins := flag.String("gremlins", "bin/gremlins", "The gremlins binary; empty skips gremlins.")
	packages := flag.String("packages", "./pkg/tenancy,./pkg/fairqueue,./pkg/render,./pkg/awssm,./pkg/bump,./cmd/update-aws-secret-ids,./pkg/controller,./cmd/aws-secret-controller", "Packages gremlins mutates, comma separated.")
	timeout := flag.Duration("gremlins-timeout", 20*time.Minute, "How long gremlins may take for one package.")
	only := flag.String("only", "", "Run only the project mutants whose name matches this regular expression, and no gremlins.")
	out := flag.String("out", "docs/mutation.md", "The report, relative to --repo unless absolute.")
	from := flag.String("gremlins-from", "", "Instead of running gremlins, take its figures from the output of an earlier run of this command (its \"gremlins PKG: killed ...\" lines).")
	fromNote := flag.String("gremlins-note", "", "With --gremlins-from: which tree and when that run measured, for the report.")
	flag.Parse()
	if *from != "" {
		runs, err := readRuns(*from)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mutate:", err)
			os.Exit(1)
		}
		earlier, earlierNote = runs, *fromNote
		*gremlins = ""
	}
	if err := run(*repo, *gremlins, *packages, *timeout, *only, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mutate:", err)
		os.Exit(1)
	}
}

// outcome is what became of one project mutant.
type outcome struct {
	mutant
	// killed: the named test failed; survived: it passed; invalid: the mutant did not apply or
	// did not build, which says the mutants table is stale.
	result string
	took   time.Duration
}

// gremlinsRun is gremlins' summary for one package.
type gremlinsRun struct {
	pkg                                            string
	killed, lived, notCovered, timedOut, notViable int
	took                                           time.Duration
	err                                            string
	survivors                                      []string
}

func run(repo, gremlins, packages string, timeout time.Duration, only, out string) error {
	repo, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mutate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := copyTracked(repo, work); err != nil {
		return err
	}
	var filter *regexp.Regexp
	if only != "" {
		if filter, err = regexp.Compile(only); err != nil {
			return err
		}
	}
	var outcomes []outcome
	for _, m := range mutants {
		if filter != nil && !filter.MatchString(m.name) {
			continue
		}
		o := apply(work, m)
		fmt.Printf("%-8s %s (%s -run %s, %s)\n", o.result, m.name, m.pkg, m.test, o.took.Round(time.Second))
		outcomes = append(outcomes, o)
	}
	var runs []gremlinsRun
	if gremlins != "" && filter == nil {
		bin := gremlins
		if !filepath.IsAbs(bin) {
			bin = filepath.Join(repo, bin)
		}
		for _, pkg := range strings.Split(packages, ",") {
			r := unleash(work, bin, pkg, timeout)
			fmt.Printf("gremlins %s: killed %d, lived %d, not covered %d, timed out %d, not viable %d (%s) %s\n",
				pkg, r.killed, r.lived, r.notCovered, r.timedOut, r.notViable, r.took.Round(time.Second), r.err)
			runs = append(runs, r)
		}
	}
	if filter != nil {
		return nil
	}
	if runs == nil {
		runs = earlier
	}
	if !filepath.IsAbs(out) {
		out = filepath.Join(repo, out)
	}
	return os.WriteFile(out, report(outcomes, runs), 0o644)
}

// earlier and earlierNote are gremlins' figures from an earlier run (--gremlins-from), and what
// it measured.
var (
	earlier     []gremlinsRun
	earlierNote string
)

var runLine = regexp.MustCompile(`(?m)^gremlins (\S+): killed (\d+), lived (\d+), not covered (\d+), timed out (\d+), not viable (\d+) \(([^)]+)\) ?(.*)$`)

// readRuns reads the gremlins lines an earlier run printed.
func readRuns(path string) ([]gremlinsRun, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var runs []gremlinsRun
	for _, m := range runLine.FindAllStringSubmatch(string(b), -1) {
		r := gremlinsRun{pkg: m[1], err: strings.TrimSpace(m[8])}
		for i, n := range []*int{&r.killed, &r.lived, &r.notCovered, &r.timedOut, &r.notViable} {
			fmt.Sscan(m[i+2], n)
		}
		if r.took, err = time.ParseDuration(m[7]); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, m[0], err)
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%s: no gremlins lines", path)
	}
	return runs, nil
}

// copyTracked copies the files git tracks, as they are in the working tree, into dir.
func copyTracked(repo, dir string) error {
	list, err := exec.Command("git", "-C", repo, "ls-files", "-z").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		data, err := os.ReadFile(filepath.Join(repo, name))
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// apply applies one mutant in work, runs its test, and restores the file.
func apply(work string, m mutant) outcome {
	start := time.Now()
	o := outcome{mutant: m}
	path := filepath.Join(work, m.file)
	original, err := os.ReadFile(path)
	if err != nil {
		o.result = "invalid"
		return o
	}
	defer os.WriteFile(path, original, 0o644)
	mutated := string(original)
	for _, e := range m.edits {
		if strings.Count(mutated, e.old) != 1 {
			o.result = "invalid"
			return o
		}
		mutated = strings.Replace(mutated, e.old, e.new, 1)
	}
	if err := os.WriteFile(path, []byte(mutated), 0o644); err != nil {
		o.result = "invalid"
		return o
	}
	cmd := exec.Command("go", "test", "-count=1", "-run", m.test, m.pkg)
	cmd.Dir = work
	output, err := cmd.CombinedOutput()
	o.took = time.Since(start)
	switch {
	case err == nil:
		o.result = "survived"
	case bytes.Contains(output, []byte("[build failed]")) || bytes.Contains(output, []byte("[setup failed]")):
		o.result = "invalid"
	case bytes.Contains(output, []byte("--- FAIL")):
		o.result = "killed"
	default:
		o.result = "invalid"
	}
	return o
}

// summary matches gremlins' closing counts.
var summary = map[string]*regexp.Regexp{
	"killed":     regexp.MustCompile(`Killed: (\d+)`),
	"lived":      regexp.MustCompile(`Lived: (\d+)`),
	"notCovered": regexp.MustCompile(`Not covered: (\d+)`),
	"timedOut":   regexp.MustCompile(`Timed out: (\d+)`),
	"notViable":  regexp.MustCompile(`Not viable: (\d+)`),
}

var livedLine = regexp.MustCompile(`(?m)^\s*LIVED\s+(.*)$`)

// unleash runs gremlins over one package of the copy.
func unleash(work, bin, pkg string, timeout time.Duration) gremlinsRun {
	r := gremlinsRun{pkg: pkg}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "unleash", "--workers", "1", "--test-cpu", "2", "--timeout-coefficient", "3", pkg)
	cmd.Dir = work
	output, err := cmd.CombinedOutput()
	r.took = time.Since(start)
	if ctx.Err() != nil {
		r.err = fmt.Sprintf("stopped after %s", timeout)
	} else if err != nil {
		r.err = err.Error()
	}
	counts := map[string]*int{"killed": &r.killed, "lived": &r.lived, "notCovered": &r.notCovered, "timedOut": &r.timedOut, "notViable": &r.notViable}
	for k, re := range summary {
		if m := re.FindSubmatch(output); m != nil {
			fmt.Sscan(string(m[1]), counts[k])
		}
	}
	for _, m := range livedLine.FindAllSubmatch(output, -1) {
		r.survivors = append(r.survivors, strings.TrimSpace(string(m[1])))
	}
	return r
}

func report(outcomes []outcome, runs []gremlinsRun) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Mutation testing\n\nGenerated by `hack/mutate` (`make mutate`) on %s. Each mutant breaks a copy of the\n", time.Now().UTC().Format(time.RFC3339))
	b.WriteString("tree on purpose; a test must fail. The project's own mutants are the kinds of breakage a review\n")
	b.WriteString("found no test for (calls removed, checks and selectors made no-ops, inputs dropped from a hash);\n")
	b.WriteString("gremlins adds arithmetic and comparison flips.\n\n## Project mutants\n\n")
	b.WriteString("| mutant | file | test that must fail | result |\n| --- | --- | --- | --- |\n")
	for _, o := range outcomes {
		fmt.Fprintf(&b, "| %s | `%s` | `%s -run %s` | %s |\n", o.name, o.file, o.pkg, o.test, o.result)
	}
	if len(runs) > 0 {
		b.WriteString("\n## gremlins v0.6.0\n\n`gremlins unleash --workers 1 --test-cpu 2 --timeout-coefficient 3 PKG` on the copy.\n\n")
		if earlierNote != "" {
			fmt.Fprintf(&b, "These figures are from an earlier run (`--gremlins-from`): %s.\n\n", earlierNote)
		}
		b.WriteString("| package | killed | lived | not covered | timed out | not viable | took | note |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range runs {
			fmt.Fprintf(&b, "| `%s` | %d | %d | %d | %d | %d | %s | %s |\n", r.pkg, r.killed, r.lived, r.notCovered, r.timedOut, r.notViable, r.took.Round(time.Second), r.err)
		}
		b.WriteString(notCovered)
		for _, r := range runs {
			if len(r.survivors) == 0 {
				continue
			}
			fmt.Fprintf(&b, "\nSurvivors in `%s`:\n\n", r.pkg)
			for _, s := range r.survivors {
				fmt.Fprintf(&b, "- %s\n", s)
			}
		}
	}
	return b.Bytes()
}

// notCovered says what gremlins' "not covered" and "timed out" columns hold, package by package.
// gremlins mutates only what the package's own tests cover, by Go's cover profile; `gremlins
// unleash --dry-run PKG` lists the places.
const notCovered = `
**Not covered** is what gremlins does not mutate, because the package's own tests do not cover it
by Go's cover profile. There are four kinds, and no untested logic among them:

- **Case expressions of tagless switches.** Go's cover profile has no block for them, so gremlins
  counts them as not covered although the tests evaluate them. This is every place in pkg/awssm
  (Classify's cases in errors.go, run by TestClassify's rows, and get's SecretString/SecretBinary
  switch in awssm.go, run by pkg/controller's SecretBinary rows), propertyPath's escapes and propertyRaw's member checks in
  pkg/render's payload.go (TestPropertyPath, TestDataEntries) and cmp's kind switch in template.go
  (TestComparisonsMatchTextTemplate), and in pkg/controller NewController's checks of its
  options (TestNewControllerNeedsItsOptions), syncSecret's and currentSecret's decisions (sync.go,
  TestSyncHandler's rows) and sharedBool (cache.go). So are every place in pkg/fairqueue (pop's
  choice of class and the deque's shrinking), pkg/tenancy (Decide's rules, TestDecide) and pkg/bump
  (the YAML scalar's quoting), and update-aws-secret-ids' result switch.
- **Conditions the cover profile puts in no block.** These are the ` + "`if err != nil`" + ` checks after a
  func literal in the same statement (the event handler registrations in pkg/controller's
  controller.go), and the constants built with + (pkg/controller/secret.go's annotation names),
  where - would not compile on strings.
- **Code that other packages' tests run.** MappingDigest and VersionsDigest in pkg/render/mapping.go
  are run by pkg/controller's tests, which compare the annotations they write with them.
- **The binaries' main and run** (cmd/aws-secret-controller/main.go: flag defaults, wiring,
  exits; update-aws-secret-ids' main). The e2e suite runs them as the real binaries on the local
  stack, and gremlins does not run that suite.

**Timed out** counts as detected: the mutant made the tests run past 3 times their normal time.
Run alone on a quiet machine (2026-11-29T04:35Z), pkg/bump had none: all 90 of its mutants were
killed outright.
`
