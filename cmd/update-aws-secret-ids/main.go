// Command update-aws-secret-ids bumps the versionIds that AWSSecrets pin in YAML files to the
// version that holds a stage (AWSCURRENT by default), so that CI or a bot can keep Git current
// while holding only secretsmanager:DescribeSecret: it never reads a secret's value.
//
//	update-aws-secret-ids [--check] [--diff] [--stage AWSCURRENT] [--aws-region R] [--aws-endpoint URL] PATH...
//
// Exit status: 0 when everything is current (or was bumped), 1 with --check when a reference is
// behind, 2 on any error (a secret that is not found, no version with the stage, access denied,
// a file that is not YAML).
package main

import (
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
		fmt.Fprintln(stderr, "Usage: update-aws-secret-ids [--check] [--diff] [--stage AWSCURRENT] [--aws-region R] [--aws-endpoint URL] PATH...")
		fmt.Fprintln(stderr, "Bumps the versionIds AWSSecrets pin in YAML files (walking directories for *.yaml and *.yml)")
		fmt.Fprintln(stderr, "to the version holding the stage, with one DescribeSecret per secret; never reads a value.")
		fs.PrintDefaults()
	}
	fs.BoolVar(&o.check, "check", false, "write nothing; exit 1 when any reference is behind, 0 when all are current (a CI gate)")
	fs.BoolVar(&o.diff, "diff", false, "write nothing; print a unified diff of the changes")
	fs.StringVar(&o.stage, "stage", "AWSCURRENT", "the version stage to pin")
	fs.IntVar(&o.concurrency, "concurrency", 8, "DescribeSecret calls in flight at most")
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

// file is one YAML file and the references found in it.
type file struct {
	path    string
	content []byte
	refs    []bump.Ref
}

// run bumps the references under opts.paths and returns the exit status. Change lines go to
// stdout (to stderr with --diff, whose diff goes to stdout); errors go to stderr.
func run(ctx context.Context, opts options, api bump.Describer, stdout, stderr io.Writer) int {
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	var files []*file
	var ids []string
	for _, path := range yamlFiles(opts.paths, fail) {
		content, err := os.ReadFile(path)
		if err != nil {
			fail("%s: %v", path, err)
			continue
		}
		refs, err := bump.Find(content)
		if err != nil {
			fail("%s: not valid YAML, skipped: %v", path, err)
			continue
		}
		if len(refs) == 0 {
			continue
		}
		files = append(files, &file{path: path, content: content, refs: refs})
		for _, r := range refs {
			ids = append(ids, r.SecretID)
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
				fmt.Fprintf(changes, "%s:%d %s %s -> %s\n", f.path, r.Line, r.SecretID, r.VersionID, res.VersionID)
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
		case opts.check || string(updated) == string(f.content):
		default:
			if err := writeFile(f.path, updated); err != nil {
				fail("%s: %v", f.path, err)
			}
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

// yamlFiles expands the paths: a file is taken as it is; a directory is walked for *.yaml and
// *.yml, skipping hidden directories such as .git.
func yamlFiles(paths []string, fail func(string, ...any)) []string {
	var out []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			fail("%v", err)
			continue
		}
		if !info.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				fail("%v", err)
				return nil
			}
			if d.IsDir() && path != p && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			fail("%s: %v", p, err)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// writeFile replaces a file's content through a temporary file and a rename, keeping its mode,
// so that an interrupted run never leaves half a file.
func writeFile(path string, content []byte) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
