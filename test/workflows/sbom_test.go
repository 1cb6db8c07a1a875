package workflows

import (
	"debug/buildinfo"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
)

// cycloneDX is the part of a CycloneDX JSON document the release relies on.
type cycloneDX struct {
	BOMFormat   string `json:"bomFormat"`
	SpecVersion string `json:"specVersion"`
	Metadata    struct {
		Component component `json:"component"`
	} `json:"metadata"`
	Components []component `json:"components"`
}

type component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl"`
	Hashes  []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
}

// TestSBOMListsTheBinarysModules: the SBOMs `make sbom` writes (and the release attests) name
// each binary's main module and list exactly the modules linked into it, at the versions its
// build information records, each with a purl and a SHA-256. It reads bin/, which `make test`
// fills (build, sbom) before it runs the tests.
func TestSBOMListsTheBinarysModules(t *testing.T) {
	bin := os.Getenv("AWS_SECRET_CONTROLLER_BIN_DIR")
	if bin == "" {
		t.Skip("AWS_SECRET_CONTROLLER_BIN_DIR is unset: run `make sbom` and set it (make test does)")
	}
	for _, name := range []string{"aws-secret-controller", "update-aws-secret-ids"} {
		t.Run(name, func(t *testing.T) {
			info, err := buildinfo.ReadFile(filepath.Join(bin, name))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(bin, "sbom", name+".cdx.json"))
			if err != nil {
				t.Fatalf("%v: run `make sbom`", err)
			}
			var bom cycloneDX
			if err := json.Unmarshal(b, &bom); err != nil {
				t.Fatal(err)
			}
			if bom.BOMFormat != "CycloneDX" || bom.SpecVersion == "" {
				t.Errorf("bomFormat %q, specVersion %q", bom.BOMFormat, bom.SpecVersion)
			}
			if m := bom.Metadata.Component; m.Name != info.Main.Path || m.Version == "" {
				t.Errorf("the SBOM describes %s@%s, want %s at the release's version", m.Name, m.Version, info.Main.Path)
			}
			want := map[string]bool{}
			for _, d := range info.Deps {
				if d.Replace != nil {
					d = d.Replace
				}
				want[module(d)] = true
			}
			got := map[string]bool{}
			for _, c := range bom.Components {
				m := c.Name + "@" + c.Version
				got[m] = true
				if !want[m] {
					t.Errorf("the SBOM lists %s, which is not linked into %s", m, name)
				}
				if !strings.HasPrefix(c.PURL, "pkg:golang/"+c.Name+"@"+c.Version) {
					t.Errorf("%s: purl %q", m, c.PURL)
				}
				if len(c.Hashes) == 0 || c.Hashes[0].Alg != "SHA-256" || len(c.Hashes[0].Content) != 64 {
					t.Errorf("%s: hashes %+v, want its module's SHA-256", m, c.Hashes)
				}
			}
			var missing []string
			for m := range want {
				if !got[m] {
					missing = append(missing, m)
				}
			}
			sort.Strings(missing)
			if len(want) == 0 || len(missing) > 0 {
				t.Errorf("%d modules linked into %s, the SBOM misses %v", len(want), name, missing)
			}
		})
	}
}

func module(m *debug.Module) string { return m.Path + "@" + m.Version }
