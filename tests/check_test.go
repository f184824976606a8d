package tests

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/connectors/random"
	"github.com/dsyncio/dsync/coordinator/checkpoint"
	"github.com/dsyncio/dsync/tests/testsink"
)

// sinkURL is the testsink URL of the store in dir, with a query such as
// "?delay=5ms" or "".
func sinkURL(dir, query string) string { return "testsink://" + filepath.ToSlash(dir) + query }

// randomOptions parses a random:// URL as the source does.
func randomOptions(t testing.TB, url string) random.Options {
	t.Helper()
	o, err := random.ParseURL(url)
	if err != nil {
		t.Fatalf("random.ParseURL(%q): %v", url, err)
	}
	return o
}

// inspect opens the testsink store in dir read-only, calls fn and closes
// it. The plugin that wrote it must have exited.
func inspect(t testing.TB, dir string, fn func(s *testsink.Store)) {
	t.Helper()
	s, err := testsink.Open(dir)
	if err != nil {
		t.Fatalf("open the sink store (has its plugin exited?): %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close the sink store: %v", err)
		}
	}()
	fn(s)
}

// sinkFacts are the figures of a testsink store that the crash tests track.
type sinkFacts struct {
	// Docs is the number of documents stored, per namespace and in total.
	Docs      map[string]int `json:"docs"`
	TotalDocs int            `json:"total_docs"`
	// Counters are the store's write counters.
	Counters testsink.Counters `json:"counters"`
}

// readSinkFacts reads the figures of the store in dir with the sinkfacts
// helper, built without the race detector: scanning a store in this
// process under -race is about thirty times slower.
func readSinkFacts(t testing.TB, dir string) sinkFacts {
	t.Helper()
	cmd := exec.Command(env.sinkfacts, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sinkfacts %s: %v: %s", dir, err, stderr.Bytes())
	}
	var f sinkFacts
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("sinkfacts output %q: %v", out, err)
	}
	return f
}

// errLimit caps the mismatches reported per check.
const errLimit = 10

// checkCopy checks that the store in dir holds exactly the initial documents
// of o, with identical bytes, in the namespaces nss (all of o's when nil),
// and that no other namespace was written when exclusive is set.
func checkCopy(t testing.TB, dir string, o random.Options, nss []int, exclusive bool) {
	t.Helper()
	if nss == nil {
		for ns := range o.Namespaces {
			nss = append(nss, ns)
		}
	}
	inspect(t, dir, func(s *testsink.Store) {
		if exclusive {
			got, err := s.Namespaces()
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, ns := range nss {
				want = append(want, o.NamespaceName(ns))
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("sink namespaces = %q, want %q", got, want)
			}
		}
		eachParallel(t, len(nss), func(k int) error {
			ns := nss[k]
			name := o.NamespaceName(ns)
			seen := make([]bool, o.Docs)
			bad := 0
			report := func(format string, args ...any) {
				if bad++; bad <= errLimit {
					t.Errorf("%s: "+format, append([]any{name}, args...)...)
				}
			}
			err := s.Each(name, func(id bson.RawValue, doc bson.Raw) error {
				i, ok := id.Int64OK()
				switch {
				case !ok:
					report("extra document with _id %s", testsink.IDString(id))
				case i < 0 || i >= o.Docs:
					report("extra document with _id %d", i)
				default:
					seen[i] = true
					if want := o.Doc(ns, i); !bytes.Equal(doc, want) {
						report("document %d differs:\n got %s\nwant %s", i, doc, want)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			missing := 0
			for i, ok := range seen {
				if !ok {
					if missing++; missing <= errLimit {
						t.Errorf("%s: document %d missing", name, i)
					}
				}
			}
			if bad+missing > 0 {
				t.Errorf("%s: %d documents missing, %d extra or different (of %d)", name, missing, bad, o.Docs)
			}
			return nil
		})
	})
}

// eachParallel runs fn(0) ... fn(n-1) concurrently and fails the test with
// the first error. Store reads are safe for concurrent use; verifying
// namespaces in parallel halves the time of the larger checks.
func eachParallel(t testing.TB, n int, fn func(k int) error) {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() { errs[k] = fn(k) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// stateAt returns what a sink holds after the copy of o's documents and
// its first n change events.
func stateAt(t testing.TB, o random.Options, n int64) random.State {
	t.Helper()
	s := o.InitialState()
	for e := range o.Events(0) {
		if e.Seq >= n {
			break
		}
		if err := s.Apply(e.Namespace, e.Update); err != nil {
			t.Fatalf("random event %d: %v", e.Seq, err)
		}
	}
	return s
}

// checkState checks that the store in dir holds exactly want, byte for byte
// per _id, and no other namespace.
func checkState(t testing.TB, dir string, want random.State) {
	t.Helper()
	inspect(t, dir, func(s *testsink.Store) {
		got, err := s.Namespaces()
		if err != nil {
			t.Fatal(err)
		}
		var wantNS []string
		for ns, docs := range want {
			if len(docs) > 0 {
				wantNS = append(wantNS, ns)
			}
		}
		slices.Sort(wantNS)
		if !slices.Equal(got, wantNS) {
			t.Errorf("sink namespaces = %q, want %q", got, wantNS)
		}
		nss := slices.Sorted(maps.Keys(want))
		eachParallel(t, len(nss), func(k int) error {
			ns := nss[k]
			docs := want[ns]
			seen := map[int64]bool{}
			bad := 0
			report := func(format string, args ...any) {
				if bad++; bad <= errLimit {
					t.Errorf("%s: "+format, append([]any{ns}, args...)...)
				}
			}
			err := s.Each(ns, func(id bson.RawValue, doc bson.Raw) error {
				i, ok := id.Int64OK()
				if !ok {
					report("extra document with _id %s", testsink.IDString(id))
					return nil
				}
				seen[i] = true
				w, ok := docs[i]
				switch {
				case !ok:
					report("extra document %d: %s", i, doc)
				case !bytes.Equal(doc, w):
					report("document %d differs:\n got %s\nwant %s", i, doc, w)
				}
				return nil
			})
			if err != nil {
				return err
			}
			missing := 0
			for _, i := range slices.Sorted(maps.Keys(docs)) {
				if !seen[i] {
					if missing++; missing <= errLimit {
						t.Errorf("%s: document %d missing", ns, i)
					}
				}
			}
			if bad+missing > 0 {
				t.Errorf("%s: %d documents missing, %d extra or different (of %d)", ns, missing, bad, len(docs))
			}
			return nil
		})
	})
}

// cursorPos decodes a random:// update cursor as printed by dsync (hex of
// "u1:<position>").
func cursorPos(t testing.TB, printed string) int64 {
	t.Helper()
	b, err := hex.DecodeString(printed)
	if err != nil {
		t.Fatalf("cursor %q is not hex: %v", printed, err)
	}
	s, ok := strings.CutPrefix(string(b), "u1:")
	n, err := strconv.ParseInt(s, 10, 64)
	if !ok || err != nil {
		t.Fatalf("cursor %q (%q) is not a random:// update cursor", printed, b)
	}
	return n
}

// flowSnapshot is everything the checkpoint store holds about its flows.
type flowSnapshot struct {
	Meta       checkpoint.FlowMeta
	Partitions []checkpoint.PartitionState
	Updates    []checkpoint.UpdateState
}

// snapshotState reads every flow of the checkpoint store in dir; nil when
// there is no store. No dsync may be running on dir.
func snapshotState(t testing.TB, dir string) []flowSnapshot {
	t.Helper()
	st, err := checkpoint.Open(dir, checkpoint.Options{ReadOnly: true, Logf: func(string, ...any) {}})
	if errors.Is(err, checkpoint.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("open the checkpoint store: %v", err)
	}
	defer st.Close()
	flows, err := st.Flows()
	if err != nil {
		t.Fatal(err)
	}
	out := []flowSnapshot{}
	for _, f := range flows {
		fs := flowSnapshot{Meta: f}
		if fs.Partitions, err = st.Partitions(f.ID); err != nil {
			t.Fatal(err)
		}
		if fs.Updates, err = st.Updates(f.ID); err != nil {
			t.Fatal(err)
		}
		out = append(out, fs)
	}
	return out
}

// onlyFlow returns the single flow of the checkpoint store in dir.
func onlyFlow(t testing.TB, dir string) flowSnapshot {
	t.Helper()
	fs := snapshotState(t, dir)
	if len(fs) != 1 {
		t.Fatalf("checkpoint store holds %d flows, want 1: %+v", len(fs), fs)
	}
	return fs[0]
}

// checkpointedDocs is the number of documents of the flow's checkpointed
// pages.
func (f flowSnapshot) checkpointedDocs() uint64 {
	var n uint64
	for _, p := range f.Partitions {
		n += p.Docs
	}
	return n
}

func (f flowSnapshot) partitionsDone() int {
	n := 0
	for _, p := range f.Partitions {
		if p.Done {
			n++
		}
	}
	return n
}

// sameState fails the test when the checkpoint store changed.
func sameState(t testing.TB, before, after []flowSnapshot) {
	t.Helper()
	if !reflect.DeepEqual(before, after) {
		t.Errorf("checkpoint store changed:\nbefore %s\nafter  %s", describeState(before), describeState(after))
	}
}

func describeState(fs []flowSnapshot) string {
	if fs == nil {
		return "(no store)"
	}
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "[flow %s mode %s phase %s updated %s: %d partitions (%d done, %d docs), %d update streams] ",
			f.Meta.ID, f.Meta.Mode, f.Meta.Phase, f.Meta.UpdatedAt.Format("15:04:05.000"),
			len(f.Partitions), f.partitionsDone(), f.checkpointedDocs(), len(f.Updates))
	}
	return b.String()
}
