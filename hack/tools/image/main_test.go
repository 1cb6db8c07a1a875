package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const ref = "ghcr.io/mumoshu/aws-secret-controller:v0.1.0"

// TestImages builds images as `make image` does and checks what `ctr images import`, `docker
// load` and a registry get from the tarball: the controller's for the host's platform (the
// release builds both; compiling every dependency for the other architecture would cost a cold
// `make test` minutes), and the small test application's for both platforms, which exercises
// the multi-platform index the release pushes.
func TestImages(t *testing.T) {
	host := "linux/" + runtime.GOARCH
	for _, tc := range []struct {
		pkg, binary string
		platforms   []string
	}{
		{"./cmd/aws-secret-controller", "aws-secret-controller", []string{host}},
		{"./test/node/testapp", "testapp", []string{"linux/amd64", "linux/arm64"}},
	} {
		t.Run(tc.binary, func(t *testing.T) { testImage(t, tc.pkg, tc.binary, tc.platforms) })
	}
}

func testImage(t *testing.T, pkg, binary string, platforms []string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "image.tar")
	args := []string{"--repo", "../../..", "--pkg", pkg, "--platforms", strings.Join(platforms, ","),
		"--ref", ref, "--version", "v0.1.0", "--commit", "0123abcd", "--out", out}
	if err := run(context.Background(), "build", args); err != nil {
		t.Fatal(err)
	}
	idx, imageName, cleanup, err := readFile(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)

	t.Run("index.json names the image", func(t *testing.T) {
		var top v1.IndexManifest
		if err := json.Unmarshal(tarEntry(t, out, "index.json"), &top); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"org.opencontainers.image.ref.name": "v0.1.0", "io.containerd.image.name": ref}
		if len(top.Manifests) != 1 || !cmp.Equal(top.Manifests[0].Annotations, want) {
			t.Errorf("index.json = %+v, want one entry annotated %v", top, want)
		}
		if imageName != ref {
			t.Errorf("readFile named %q, want %q", imageName, ref)
		}
	})

	labels := map[string]string{
		"org.opencontainers.image.source":   "https://github.com/mumoshu/aws-secret-controller",
		"org.opencontainers.image.revision": "0123abcd",
		"org.opencontainers.image.version":  "v0.1.0",
	}
	t.Run("one OCI image per platform", func(t *testing.T) {
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != types.OCIImageIndex || !cmp.Equal(im.Annotations, labels) {
			t.Errorf("index: media type %s, annotations %v; want %s, %v", im.MediaType, im.Annotations, types.OCIImageIndex, labels)
		}
		var built []string
		for _, m := range im.Manifests {
			built = append(built, m.Platform.String())
			img, err := idx.Image(m.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			// Fixed times, not the build's: a literal here, since a clock read once per process
			// would also give two builds in this test the same bytes.
			if !cfg.Created.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: created %s, want the Unix epoch", m.Platform, cfg.Created)
			}
			if cfg.OS != m.Platform.OS || cfg.Architecture != m.Platform.Architecture {
				t.Errorf("%s: config says %s/%s", m.Platform, cfg.OS, cfg.Architecture)
			}
			if m.MediaType != types.OCIManifestSchema1 {
				t.Errorf("%s: manifest media type %s", m.Platform, m.MediaType)
			}
			wantConfig := v1.Config{Entrypoint: []string{"/" + binary}, User: "65532:65532", Labels: labels}
			if diff := cmp.Diff(wantConfig, cfg.Config); diff != "" {
				t.Errorf("%s: config (-want +got):\n%s", m.Platform, diff)
			}
			hdr, bin := onlyFile(t, img)
			if hdr.Name != binary || hdr.Mode != 0o755 || hdr.Uid != 0 || !hdr.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("%s: layer holds %s mode %o uid %d mtime %s, want %s mode 755 uid 0 at the epoch",
					m.Platform, hdr.Name, hdr.Mode, hdr.Uid, hdr.ModTime, binary)
			}
			if binary == "aws-secret-controller" && m.Platform.OS == runtime.GOOS && m.Platform.Architecture == runtime.GOARCH {
				got := runBinary(t, bin, "--version")
				if want := "aws-secret-controller v0.1.0 (commit 0123abcd, "; !strings.HasPrefix(got, want) {
					t.Errorf("the image's binary --version = %q, want %q...", got, want)
				}
			}
		}
		if !cmp.Equal(built, platforms) {
			t.Errorf("platforms %v, want %v", built, platforms)
		}
	})

	t.Run("manifest.json for docker load", func(t *testing.T) {
		var m []struct {
			Config   string
			RepoTags []string
			Layers   []string
		}
		if err := json.Unmarshal(tarEntry(t, out, "manifest.json"), &m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !cmp.Equal(m[0].RepoTags, []string{ref}) || len(m[0].Layers) != 1 {
			t.Fatalf("manifest.json = %+v, want one image tagged %s with one layer", m, ref)
		}
		var cfg v1.ConfigFile
		if err := json.Unmarshal(tarEntry(t, out, m[0].Config), &cfg); err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS == "linux" && cfg.Architecture != runtime.GOARCH {
			t.Errorf("manifest.json names the %s image, want the host's %s", cfg.Architecture, runtime.GOARCH)
		}
		tarEntry(t, out, m[0].Layers[0])
	})

	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(dir, "again.tar")
		if err := run(context.Background(), "build", append(args, "--out", again)); err != nil {
			t.Fatal(err)
		}
		a, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Error("a second build of the same inputs wrote a different tarball")
		}
	})

	t.Run("push", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials: the test registry takes anyone
		reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer reg.Close()
		to := strings.TrimPrefix(reg.URL, "http://") + "/mumoshu/aws-secret-controller:v0.1.0"
		digestFile := filepath.Join(t.TempDir(), "digest")
		if err := run(context.Background(), "push", []string{"--in", out, "--ref", to, "--digest-file", digestFile}); err != nil {
			t.Fatal(err)
		}
		r, err := name.ParseReference(to)
		if err != nil {
			t.Fatal(err)
		}
		pushed, err := remote.Index(r)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := idx.Digest()
		if got, _ := pushed.Digest(); got != want {
			t.Errorf("registry has %s, want %s", got, want)
		}
		// What the release signs and attests.
		if b, err := os.ReadFile(digestFile); err != nil || string(b) != want.String()+"\n" {
			t.Errorf("--digest-file holds %q (%v), want %s", b, err, want)
		}
		// A node pulls its platform's image, layer included.
		p, err := v1.ParsePlatform(platforms[len(platforms)-1])
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(r, remote.WithPlatform(*p))
		if err != nil {
			t.Fatal(err)
		}
		if hdr, _ := onlyFile(t, img); hdr.Name != binary {
			t.Errorf("pulled layer holds %s", hdr.Name)
		}
	})
}

// TestPauseImage builds the test node's sandbox image for the host and runs its binary: it
// waits until SIGTERM and then exits 0.
func TestPauseImage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "pause.tar")
	if err := run(context.Background(), "pause", []string{"--platforms", "linux/" + runtime.GOARCH, "--out", out}); err != nil {
		t.Fatal(err)
	}
	idx, imageName, cleanup, err := readFile(out)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if imageName != "registry.k8s.io/pause:3.10" {
		t.Errorf("named %q", imageName)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65535:65535" || !cmp.Equal(cfg.Config.Entrypoint, []string{"/pause"}) {
		t.Errorf("config %+v, want /pause as 65535:65535", cfg.Config)
	}
	hdr, bin := onlyFile(t, img)
	if hdr.Name != "pause" || hdr.Mode != 0o755 {
		t.Errorf("layer holds %s mode %o", hdr.Name, hdr.Mode)
	}
	if runtime.GOOS != "linux" {
		return
	}
	path := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("pause exited before SIGTERM: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("pause on SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("pause did not exit within 10s of SIGTERM")
	}
}

// tarEntry returns the file called name in the tarball at path (gzipped when it ends in .tgz).
func tarEntry(t *testing.T, path, name string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".tgz") {
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s in %s: %v", name, path, err)
		}
		if h.Name == name {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}

// onlyFile returns the one file in img's one layer.
func onlyFile(t *testing.T, img v1.Image) (*tar.Header, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers, %v; want 1", len(layers), err)
	}
	if mt, _ := layers[0].MediaType(); mt != types.OCILayer {
		t.Errorf("layer media type %s, want %s", mt, types.OCILayer)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(tr)
	if err != nil {
		t.Fatal(err)
	}
	if next, err := tr.Next(); err != io.EOF {
		t.Errorf("layer holds more than %s: %v %v", h.Name, next, err)
	}
	return h, b
}

// runBinary writes bin to a file, runs it with args and returns what it printed.
func runBinary(t *testing.T, bin []byte, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestChartPush runs `make chart-push`, as the release does, against a registry in the test
// process: the chart lands at <repo>/aws-secret-controller:<version without v> and
// bin/chart-digest holds the digest the registry serves it under, which the release signs.
func TestChartPush(t *testing.T) {
	helmBin := filepath.Join(os.Getenv("AWS_SECRET_CONTROLLER_BIN_DIR"), "helm")
	if _, err := os.Stat(helmBin); os.Getenv("AWS_SECRET_CONTROLLER_BIN_DIR") == "" || err != nil {
		t.Skip("needs bin/helm: run `make image-test`")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	bin := t.TempDir()
	if err := os.Symlink(helmBin, filepath.Join(bin, "helm")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-C", "../../..", "chart-push", "BIN="+bin, "VERSION=v9.8.7",
		"CHART_REPO=oci://"+host+"/charts", "HELM_PUSH_FLAGS=--plain-http")
	cmd.Env = append(os.Environ(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_CACHE_HOME="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make chart-push: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(bin, "chart-digest"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(host+"/charts/aws-secret-controller:9.8.7", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != desc.Digest.String() {
		t.Errorf("chart-digest %q, the registry serves the chart as %s", got, desc.Digest)
	}
	// The packaged chart names the release's version and image, for Helm and Artifact Hub.
	chartYAML := string(tarEntry(t, filepath.Join(bin, "charts", "aws-secret-controller-9.8.7.tgz"), "aws-secret-controller/Chart.yaml"))
	for _, want := range []string{"\nversion: 9.8.7\n", "\nappVersion: v9.8.7\n", "\n      image: ghcr.io/mumoshu/aws-secret-controller:v9.8.7\n"} {
		if !strings.Contains(chartYAML, want) {
			t.Errorf("the packaged Chart.yaml lacks %q:\n%s", want, chartYAML)
		}
	}
}
