package checkpoint

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/vfs"
)

func TestVerifyKV(t *testing.T) {
	s := openMem(t, vfs.NewMem())
	put := []VerifyEntry{
		{"ns/db.a/part/00000001", []byte("done")},
		{"ns/db.a/part/00000000", []byte("cursor-7")},
		{"ns/db.b/part/00000000", []byte("")},
		{"ns/db.a0", []byte("sorts after the db.a/ prefix")},
		{"summary", []byte(`{"missing":1}`)},
	}
	if err := s.PutVerifyBatch("run1", put); err != nil {
		t.Fatal(err)
	}
	// Same keys in another run, and a run whose id extends run1's.
	if err := s.PutVerify("run2", "summary", []byte("other run")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVerify("run1x", "ns/db.a/part/00000000", []byte("other run")); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "run1", 1, 0) // a flow with the same id

	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"ns/db.a/part/00000000=cursor-7", "ns/db.a/part/00000001=done", "ns/db.a0=sorts after the db.a/ prefix", "ns/db.b/part/00000000=", "summary={\"missing\":1}"}},
		{"ns/db.a/", []string{"ns/db.a/part/00000000=cursor-7", "ns/db.a/part/00000001=done"}},
		{"ns/db.b/part/00000000", []string{"ns/db.b/part/00000000="}},
		{"nothing", nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("scan %q", tt.prefix), func(t *testing.T) {
			var got []string
			err := s.ScanVerify("run1", tt.prefix, func(k string, v []byte) error {
				got = append(got, k+"="+string(v))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ScanVerify = %q\nwant %q", got, tt.want)
			}
		})
	}

	if v, err := s.GetVerify("run1", "ns/db.a/part/00000000"); err != nil || string(v) != "cursor-7" {
		t.Errorf("GetVerify = %q, %v", v, err)
	}
	if _, err := s.GetVerify("run1", "absent"); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("GetVerify of a missing key: %v, want ErrKeyNotFound", err)
	}

	stop := errors.New("stop")
	calls := 0
	if err := s.ScanVerify("run1", "", func(string, []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("ScanVerify with a failing fn: %v after %d calls, want stop after 1", err, calls)
	}

	if err := s.PutVerify("run1", "", nil); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("PutVerify with an empty key: %v, want ErrInvalidArgument", err)
	}

	if err := s.ResetVerify("run1"); err != nil {
		t.Fatal(err)
	}
	if err := s.ScanVerify("run1", "", func(k string, _ []byte) error {
		t.Errorf("key %q left after ResetVerify", k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"run2", "summary"}, {"run1x", "ns/db.a/part/00000000"}} {
		if v, err := s.GetVerify(kv[0], kv[1]); err != nil || string(v) != "other run" {
			t.Errorf("run %s after ResetVerify(run1): %q, %v", kv[0], v, err)
		}
	}
	mustFlow(t, s, "run1")
	if err := s.ResetVerify("never-used"); err != nil {
		t.Errorf("ResetVerify of an unused run: %v", err)
	}
}

// TestScanVerifyCloseFromCallback checks that a write from a ScanVerify
// callback fails with ErrClosed, instead of deadlocking, when Close runs
// concurrently.
func TestScanVerifyCloseFromCallback(t *testing.T) {
	s, err := Open("state", Options{fs: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutVerify("run", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	err = s.ScanVerify("run", "", func(string, []byte) error {
		go func() { closed <- s.Close() }()
		for {
			s.mu.Lock()
			c := s.closed
			s.mu.Unlock()
			if c {
				break
			}
			time.Sleep(time.Millisecond)
		}
		return s.PutVerify("run", "k2", nil)
	})
	if !errors.Is(err, ErrClosed) {
		t.Errorf("PutVerify during Close: %v, want ErrClosed", err)
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
}
