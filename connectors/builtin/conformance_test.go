package builtin_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsyncio/dsync/connectors/builtin"
	"github.com/dsyncio/dsync/sdk/sdktest"
)

var (
	buildOnce sync.Once
	dsyncBin  string
	buildErr  error
)

// dsyncBinary builds cmd/dsync once: built-in connectors are tested exactly
// as dsync runs them, through `dsync plugin serve connector <scheme>` in a
// subprocess.
func dsyncBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dsync-builtin-conformance-")
		if err != nil {
			buildErr = err
			return
		}
		dsyncBin = filepath.Join(dir, "dsync")
		out, err := exec.Command("go", "build", "-o", dsyncBin, "github.com/dsyncio/dsync/cmd/dsync").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("go build: %s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build dsync: %v", buildErr)
	}
	return dsyncBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if dsyncBin != "" {
		os.RemoveAll(filepath.Dir(dsyncBin))
	}
	os.Exit(code)
}

func serve(t *testing.T, scheme string) func() *exec.Cmd {
	bin := dsyncBinary(t)
	return func() *exec.Cmd { return exec.Command(bin, "plugin", "serve", "connector", scheme) }
}

func TestConformance(t *testing.T) {
	harnesses := map[string]sdktest.Harness{
		"random": {
			URL:            func(sdktest.TB) string { return "random://?namespaces=2&docs=1500&partitions=3&page=200&updates=60" },
			ExpectedCounts: map[string]int{"random.ns0": 1500, "random.ns1": 1500},
			UpdateEvents:   60,
			Expect:         sdktest.Expect{Source: true, Updates: true, GetByIDs: true},
		},
		"null": {
			URL:    func(sdktest.TB) string { return "null://" },
			Expect: sdktest.Expect{Sink: true},
		},
	}
	// Connectors that need a database server run the kit in their own
	// package, against a server their tests start, through the same plugin
	// subprocess boundary (their test binary serving the connector).
	ownSuite := map[string]string{
		"mongodb":     "connectors/mongodb (TestConformance, against FerretDB)",
		"mongodb+srv": "connectors/mongodb (TestConformance; SRV records need DNS, the scheme shares the connector)",
		"postgres":    "connectors/postgres (TestConformance)",
		"postgresql":  "connectors/postgres (TestConformance)",
	}
	for _, scheme := range builtin.ConnectorSchemes() {
		if where, ok := ownSuite[scheme]; ok {
			t.Logf("%s: conformance runs in %s", scheme, where)
			continue
		}
		h, ok := harnesses[scheme]
		if !ok {
			t.Errorf("built-in connector %q has no conformance harness", scheme)
			continue
		}
		t.Run(scheme, func(t *testing.T) {
			h.Command = serve(t, scheme)
			sdktest.Run(t, h)
		})
	}
}
