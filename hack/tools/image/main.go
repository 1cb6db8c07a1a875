// Command image builds the project's OCI images with no container engine, and pushes them:
//
//	image build --repo DIR --ref REF --version V --commit SHA --out FILE  # the controller (`make image`), or --pkg
//	image pause --out FILE                                                # the test node's sandbox image (`make pause-image`)
//	image push --in FILE --ref REF                                        # `make image-push`
//
// An image is one layer holding one static Go binary, for each platform, in one OCI image
// index. The output is an OCI image layout as a tarball, which `ctr images import` (and
// `docker load`, through a docker-style manifest.json for the host's platform) takes. No
// timestamp, path or random order goes into the images, so the same sources, flags and Go
// release give the same digest on any machine.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	source = "https://github.com/mumoshu/aws-secret-controller"
	// imageNameAnnotation is containerd's: `ctr images import` names the image after it.
	imageNameAnnotation = "io.containerd.image.name"
)

// epoch is every timestamp in the images, so that a rebuild gives the same digest.
var epoch = time.Unix(0, 0).UTC()

// spec says what image to build.
type spec struct {
	dir       string // where to run go build: a module directory
	pkg       string // the main package to build, relative to dir
	binary    string // the binary's name, at the image's root
	ldflags   string // extra -ldflags, after -s -w
	user      string // the config's User, uid:gid
	labels    map[string]string
	platforms []v1.Platform
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fail(errors.New("usage: image build|pause|push [flags]; image CMD -h for the flags"))
	}
	if err := run(ctx, os.Args[1], os.Args[2:]); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "image:", err)
	os.Exit(1)
}

func run(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	var (
		repo      = fs.String("repo", "../../..", "build, pause: the repository to build from.")
		pkg       = fs.String("pkg", "./cmd/aws-secret-controller", "build: the main package in --repo to build; the binary is named after it.")
		ref       = fs.String("ref", "", "build, pause: the image's name and tag, recorded in the tarball (pause: registry.k8s.io/pause:3.10); push: where to push.")
		version   = fs.String("version", "dev", "build: the version stamped into the binary and its labels.")
		commit    = fs.String("commit", "unknown", "build: the commit stamped into the binary and its labels.")
		platforms = fs.String("platforms", "linux/amd64,linux/arm64", "build, pause: comma-separated os/arch.")
		out       = fs.String("out", "", "build, pause: the OCI layout tarball to write.")
		in        = fs.String("in", "", "push: the OCI layout tarball to push.")
		digestOut = fs.String("digest-file", "", "push: a file to write the pushed index's digest to (sha256:...), for signing it.")
	)
	_ = fs.Parse(args)
	ps, err := parsePlatforms(*platforms)
	if err != nil {
		return err
	}
	switch cmd {
	case "build":
		return buildFile(ctx, spec{dir: *repo, pkg: *pkg, binary: path.Base(*pkg), platforms: ps,
			ldflags: fmt.Sprintf("-X main.version=%s -X main.commit=%s", *version, *commit),
			user:    "65532:65532",
			labels: map[string]string{
				"org.opencontainers.image.source":   source,
				"org.opencontainers.image.revision": *commit,
				"org.opencontainers.image.version":  *version,
			}}, *ref, *out)
	case "pause":
		if *ref == "" {
			*ref = "registry.k8s.io/pause:3.10"
		}
		// Like registry.k8s.io/pause: /pause as user 65535.
		return buildFile(ctx, spec{dir: filepath.Join(*repo, "hack/tools/image"), pkg: "./pause", binary: "pause",
			platforms: ps, user: "65535:65535", labels: map[string]string{"org.opencontainers.image.source": source}}, *ref, *out)
	case "push":
		if *in == "" || *ref == "" {
			return errors.New("--in and --ref are required")
		}
		return push(ctx, *in, *ref, *digestOut)
	}
	return fmt.Errorf("unknown command %q: want build, pause or push", cmd)
}

// buildFile builds the image s describes and writes it, named ref, to the tarball out.
func buildFile(ctx context.Context, s spec, ref, out string) error {
	if ref == "" || out == "" {
		return errors.New("--ref and --out are required")
	}
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return err
	}
	idx, err := build(ctx, s)
	if err != nil {
		return err
	}
	if err := writeFile(out, idx, tag); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: %s@%s\n", out, tag, d)
	return nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var ps []v1.Platform
	for _, f := range strings.Split(s, ",") {
		p, err := v1.ParsePlatform(f)
		if err != nil {
			return nil, err
		}
		if p.OS == "" || p.Architecture == "" || p.Variant != "" {
			return nil, fmt.Errorf("platform %q: want os/arch", f)
		}
		ps = append(ps, *p)
	}
	return ps, nil
}

// build cross-compiles s for each of its platforms and returns the images in one index.
func build(ctx context.Context, s spec) (v1.ImageIndex, error) {
	tmp, err := os.MkdirTemp("", "image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range s.platforms {
		bin := filepath.Join(tmp, p.OS+"-"+p.Architecture)
		// CGO off for a static binary; -trimpath and no VCS stamp so that neither the checkout's
		// path nor the presence of .git changes the bytes (the commit is stamped by -X instead).
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "-trimpath", "-buildvcs=false",
			"-ldflags", strings.TrimSpace("-s -w "+s.ldflags), s.pkg)
		cmd.Dir = s.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s for %s: %w", s.pkg, p, err)
		}
		img, err := image(bin, s, p)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	// The labels on the index too: registries show an index's annotations (GHCR links the
	// package to its repository through org.opencontainers.image.source).
	return mutate.Annotations(idx, s.labels).(v1.ImageIndex), nil
}

// image makes a one-layer image of the binary bin.
func image(bin string, s spec, p v1.Platform) (v1.Image, error) {
	b, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	// The layer: /<binary>, owned by root and executable by the image's (non-root) user, which
	// so cannot change it. Compressed here, once; gzip output depends only on its input.
	var layerTar bytes.Buffer
	gz := gzip.NewWriter(&layerTar)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: s.binary, Mode: 0o755, Size: int64(len(b)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, err
	}
	if err := errors.Join(tw.Close(), gz.Close()); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		Created:      v1.Time{Time: epoch},
		OS:           p.OS,
		Architecture: p.Architecture,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: []string{"/" + s.binary},
			User:       s.user,
			Labels:     s.labels,
		},
	})
	if err != nil {
		return nil, err
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "go build " + s.pkg, Comment: "hack/tools/image",
	}})
	if err != nil {
		return nil, err
	}
	return mutate.ConfigMediaType(mutate.MediaType(img, types.OCIManifestSchema1), types.OCIConfigJSON), nil
}

// writeFile writes idx as an OCI image layout tarball to file (through a temporary file, so
// that a failed build never leaves a half-written tarball behind).
func writeFile(file string, idx v1.ImageIndex, tag name.Tag) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(file), ".image-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := errors.Join(writeLayout(f, idx, tag), f.Chmod(0o644), f.Close()); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}

// writeLayout writes idx as an OCI image layout tarball: blobs/sha256/*, oci-layout, and an
// index.json whose one entry is idx, named tag; plus, for `docker load` into Docker's classic
// image store (which reads manifest.json, one image per tag), a manifest.json naming the image
// of the host's platform, or the first. Both point to the same blobs, as in what `docker save`
// writes; containerd prefers the OCI layout.
func writeLayout(w io.Writer, idx v1.ImageIndex, tag name.Tag) error {
	files := map[string][]byte{}
	blob := func(d v1.Hash, b []byte) string {
		p := path.Join("blobs", d.Algorithm, d.Hex)
		files[p] = b
		return p
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return err
	}
	desc, err := partial.Descriptor(idx)
	if err != nil {
		return err
	}
	blob(desc.Digest, raw)
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	type dockerManifest struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var docker []dockerManifest
	for _, m := range im.Manifests {
		img, err := idx.Image(m.Digest)
		if err != nil {
			return err
		}
		raw, err := img.RawManifest()
		if err != nil {
			return err
		}
		blob(m.Digest, raw)
		cfgName, err := img.ConfigName()
		if err != nil {
			return err
		}
		cfg, err := img.RawConfigFile()
		if err != nil {
			return err
		}
		dm := dockerManifest{Config: blob(cfgName, cfg), RepoTags: []string{tag.String()}}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		for _, l := range layers {
			d, err := l.Digest()
			if err != nil {
				return err
			}
			rc, err := l.Compressed()
			if err != nil {
				return err
			}
			b, err := io.ReadAll(rc)
			if err := errors.Join(err, rc.Close()); err != nil {
				return err
			}
			dm.Layers = append(dm.Layers, blob(d, b))
		}
		if len(docker) == 0 || (m.Platform.OS == "linux" && m.Platform.Architecture == runtime.GOARCH) {
			docker = []dockerManifest{dm}
		}
	}

	desc.Annotations = map[string]string{
		"org.opencontainers.image.ref.name": tag.TagStr(),
		imageNameAnnotation:                 tag.String(),
	}
	if files["index.json"], err = json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{*desc}}); err != nil {
		return err
	}
	if files["manifest.json"], err = json.Marshal(docker); err != nil {
		return err
	}
	files["oci-layout"] = []byte(`{"imageLayoutVersion":"1.0.0"}`)

	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	tw := tar.NewWriter(w)
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(files[n])), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(files[n]); err != nil {
			return err
		}
	}
	return tw.Close()
}

// readFile opens an OCI layout tarball that writeFile wrote: the image index and the name
// index.json gives it. The index reads its blobs from a temporary directory, which the
// returned cleanup removes.
func readFile(file string) (idx v1.ImageIndex, ref string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "image-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			cleanup()
		}
	}()
	f, err := os.Open(file)
	if err != nil {
		return nil, "", nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if !filepath.IsLocal(h.Name) {
			return nil, "", nil, fmt.Errorf("%s: entry %q leaves the layout", file, h.Name)
		}
		p := filepath.Join(dir, h.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, "", nil, err
		}
		out, err := os.Create(p)
		if err != nil {
			return nil, "", nil, err
		}
		_, err = io.Copy(out, tr)
		if err := errors.Join(err, out.Close()); err != nil {
			return nil, "", nil, err
		}
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", nil, err
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, "", nil, err
	}
	if len(im.Manifests) != 1 {
		return nil, "", nil, fmt.Errorf("%s: index.json has %d entries, want 1", file, len(im.Manifests))
	}
	idx, err = top.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		return nil, "", nil, err
	}
	return idx, im.Manifests[0].Annotations[imageNameAnnotation], cleanup, nil
}

// push pushes the index in the tarball file to ref, with the credentials of
// ~/.docker/config.json (`docker login`) or a credential helper it names; with digestFile, it
// writes the index's digest there.
func push(ctx context.Context, file, ref, digestFile string) error {
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return err
	}
	idx, _, cleanup, err := readFile(file)
	if err != nil {
		return err
	}
	defer cleanup()
	if err := remote.WriteIndex(r, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", r, d)
	if digestFile != "" {
		return os.WriteFile(digestFile, []byte(d.String()+"\n"), 0o644)
	}
	return nil
}
