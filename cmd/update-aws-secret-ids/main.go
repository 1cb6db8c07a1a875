// Command update-aws-secret-ids bumps the versionIds that AWSSecrets pin in YAML files to the
// version that holds a stage (AWSCURRENT by default), so that CI or a bot can keep Git current
// while holding only secretsmanager:DescribeSecret: it never reads a secret's value.
//
//	update-aws-secret-ids [--check] [--diff] [--stage AWSCURRENT] [--exclude GLOB]... [--concurrency 8] [--aws-region R] [--aws-endpoint URL] PATH...
//
// Exit status: 0 when everything is current (or was bumped), 1 with --check when a reference is
// behind, 2 on any error (a secret that is not found, no version with the stage, access denied,
// a file that is not YAML or that the tool refuses to rewrite, a file changed while the tool
// ran). Warnings (templates and patches skipped) do not change it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/bump"
)

// The exit statuses.
const (
	exitCurrent = 0
	exitBehind  = 1
	exitError   = 2
)

// appID names the tool in the User-Agent of its AWS calls (CloudTrail, emulator logs).
const appID = "update-aws-secret-ids"

type options struct {
	check, diff bool
	stage       string
	concurrency int
	exclude     []string
	aws         awssm.Config
	paths       []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(exitError)
	}
	opts.aws.AppID = appID
	api, err := awssm.New(ctx, opts.aws)
	if err != nil {
		fmt.Fprintln(os.Stderr, "update-aws-secret-ids:", err)
		os.Exit(exitError)
	}
	os.Exit(run(ctx, opts, api, os.Stdout, os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("update-aws-secret-ids", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: update-aws-secret-ids [--check] [--diff] [--stage AWSCURRENT] [--exclude GLOB]... [--concurrency 8] [--aws-region R] [--aws-endpoint URL] PATH...")
		fmt.Fprintln(stderr, "Bumps the versionIds AWSSecrets pin in YAML files (walking directories for *.yaml and *.yml)")
		fmt.Fprintln(stderr, "to the version holding the stage, with one DescribeSecret per secret; never reads a value.")
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.check, "check", false, "write nothing; exit 1 when any reference is behind, 0 when all are current (a CI gate)")
	fs.BoolVar(&o.diff, "diff", false, "write nothing; print a unified diff of the changes")
	fs.StringVar(&o.stage, "stage", "AWSCURRENT", "the version stage to pin")
	fs.IntVar(&o.concurrency, "concurrency", 8, "DescribeSecret calls in flight at most")
	fs.Func("exclude", "skip the files and directories under the PATHs that match GLOB (filepath.Match, against the path relative to its PATH or its base name); repeatable", func(glob string) error {
		if _, err := filepath.Match(glob, ""); err != nil {
			return err
		}
		o.exclude = append(o.exclude, glob)
		return nil
	})
	fs.StringVar(&o.aws.Region, "aws-region", "", "AWS region; default from the environment (AWS_REGION) or shared config")
	fs.StringVar(&o.aws.Endpoint, "aws-endpoint", "", "Secrets Manager endpoint override, e.g. an emulator; AWS_ENDPOINT_URL_SECRETS_MANAGER also works")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.paths = fs.Args()
	if len(o.paths) == 0 {
		fs.Usage()
		return o, errors.New("no PATH")
	}
	if o.stage == "" {
		fmt.Fprintln(stderr, "--stage must not be empty")
		return o, errors.New("empty stage")
	}
	return o, nil
}

// file is one YAML file and the references found in it; path is as given or walked, real the
// file it names once symlinks are followed.
type file struct {
	path, real string
	content    []byte
	refs       []bump.Ref
}

// run bumps the references under opts.paths and returns the exit status. Change lines go to
// stdout (to stderr with --diff, whose diff goes to stdout), each after its file is written;
// errors and warnings go to stderr.
func run(ctx context.Context, opts options, api bump.Describer, stdout, stderr io.Writer) int {
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(stderr, "warning: "+format+"\n", args...)
	}
	var files []*file
	var ids []string
	seen := map[string]bool{}
	for _, c := range yamlFiles(opts.paths, opts.exclude, fail) {
		// A symlink is written through: its target once, however many links lead to it.
		real, err := filepath.EvalSymlinks(c.path)
		if err != nil {
			fail("%s: %v", c.path, err)
			continue
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		content, err := os.ReadFile(real)
		if err != nil {
			fail("%s: %v", c.path, err)
			continue
		}
		if !c.explicit && chartTemplate(real) {
			warn("%s: skipped: a Helm chart's template; name it on the command line to have it read", c.path)
			continue
		}
		refs, err := bump.Find(content)
		var refused *bump.Error
		switch {
		case errors.As(err, &refused):
			fail("%s: %v", c.path, err)
			continue
		case err != nil && !c.explicit && bytes.Contains(content, []byte("{{")):
			warn("%s: skipped: a template, not YAML (%v); name it on the command line to have it read", c.path, err)
			continue
		case err != nil:
			fail("%s: not valid YAML: %v", c.path, err)
			continue
		}
		var kept []bump.Ref
		for _, r := range refs {
			if r.Skipped != "" {
				warn("%s:%d: skipped: %s", c.path, r.Line, r.Skipped)
				continue
			}
			kept = append(kept, r)
			ids = append(ids, r.SecretID)
		}
		if len(kept) > 0 {
			files = append(files, &file{path: c.path, real: real, content: content, refs: kept})
		}
	}
	resolved := bump.Resolve(ctx, api, ids, opts.stage, opts.concurrency)

	changes := stdout
	if opts.diff {
		changes = stderr
	}
	behind := false
	for _, f := range files {
		to := make([]string, len(f.refs))
		var lines []string
		for i, r := range f.refs {
			res := resolved[r.SecretID]
			switch {
			case res.Err != nil:
				fail("%s:%d: %v", f.path, r.Line, res.Err)
			case res.VersionID == r.VersionID:
			case r.Problem != "":
				fail("%s:%d: %s is behind (%s) but cannot be bumped: %s", f.path, r.Line, r.SecretID, res.VersionID, r.Problem)
			default:
				to[i] = res.VersionID
				behind = true
				lines = append(lines, fmt.Sprintf("%s:%d %s %s -> %s\n", f.path, r.Line, r.SecretID, r.VersionID, res.VersionID))
			}
		}
		updated, err := bump.Rewrite(f.content, f.refs, to)
		if err != nil {
			fail("%s: %v", f.path, err)
			continue
		}
		switch {
		case opts.diff:
			fmt.Fprint(stdout, bump.UnifiedDiff(f.path, f.content, updated))
		case opts.check || bytes.Equal(updated, f.content):
		default:
			if err := writeFile(f.real, f.content, updated); err != nil {
				fail("%s: %v", f.path, err)
				continue
			}
		}
		for _, l := range lines {
			fmt.Fprint(changes, l)
		}
	}
	switch {
	case failed:
		return exitError
	case opts.check && behind:
		return exitBehind
	}
	return exitCurrent
}

// chartTemplate says whether path is under the templates directory of a Helm chart (a
// directory that holds a Chart.yaml): its values are template expressions, not versions.
func chartTemplate(path string) bool {
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		if filepath.Base(dir) == "templates" {
			if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "Chart.yaml")); err == nil {
				return true
			}
		}
		if parent := filepath.Dir(dir); parent == dir {
			return false
		}
	}
}

// candidate is a file to read: explicit when named on the command line, walked when found in a
// directory.
type candidate struct {
	path     string
	explicit bool
}

// yamlFiles expands the paths: a file is taken as it is; a directory is walked for *.yaml and
// *.yml, skipping hidden directories such as .git, and what matches an exclude glob.
func yamlFiles(paths, exclude []string, fail func(string, ...any)) []candidate {
	var out []candidate
	excluded := func(root, path string) bool {
		rel, err := filepath.Rel(root, path)
		if err != nil {
			rel = path
		}
		for _, glob := range exclude {
			for _, name := range []string{filepath.ToSlash(rel), filepath.Base(path)} {
				if ok, _ := filepath.Match(glob, name); ok {
					return true
				}
			}
		}
		return false
	}
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			fail("%v", err)
			continue
		}
		if !info.IsDir() {
			out = append(out, candidate{p, true})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fail("%v", err)
				return nil
			}
			if path != p && excluded(p, path) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				out = append(out, candidate{path, false})
			}
			return nil
		})
		if err != nil {
			fail("%s: %v", p, err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return slices.CompactFunc(out, func(a, b candidate) bool { return a.path == b.path })
}

// writeFile replaces a file's content through a temporary file, fsynced, and a rename, keeping
// its mode, owner and group, so that an interrupted run never leaves half a file. It refuses a
// file that changed since it was read (was is what was read), and one with more than one hard
// link, which a rename would split.
func writeFile(path string, was, content []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	uid, gid, links := owner(info)
	if links > 1 {
		return fmt.Errorf("not written: it has %d hard links, which replacing it would split", links)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := writeAll(tmp, content, info.Mode().Perm(), uid, gid); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Optimistic concurrency: an edit made while the tool waited on AWS is not overwritten.
	now, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(now, was) {
		return errors.New("not written: the file changed since it was read; run the tool again")
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// writeAll writes content to tmp with the original's mode, owner and group, and fsyncs it.
func writeAll(tmp *os.File, content []byte, mode fs.FileMode, uid, gid int) error {
	if _, err := tmp.Write(content); err != nil {
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if uid >= 0 {
		if st, err := tmp.Stat(); err == nil {
			if u, g, _ := owner(st); u != uid || g != gid {
				if err := tmp.Chown(uid, gid); err != nil {
					return fmt.Errorf("not written: keeping its owner and group (%d:%d): %w", uid, gid, err)
				}
			}
		}
	}
	return tmp.Sync()
}
