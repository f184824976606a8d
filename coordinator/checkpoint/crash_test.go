//go:build unix

package checkpoint

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
)

// TestSIGKILLAfterCheckpoint kills a child process right after a checkpoint
// returned and checks that the reopened store has it.
func TestSIGKILLAfterCheckpoint(t *testing.T) {
	tests := []struct {
		mode string
		// exact: the child stopped after the acknowledged checkpoint, so the
		// store must hold exactly that one; otherwise it may hold later ones.
		exact bool
	}{
		{"checkpoint-pause", true},
		{"checkpoint-run", false},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			dir := t.TempDir()
			h := startHelper(t, tt.mode, dir)
			h.waitFor(t, "checkpointed "+strconv.Itoa(crashKillAt))
			h.kill(t)

			s := mustOpen(t, dir, Options{})
			parts := mustPartitions(t, s, "crash")
			p := parts[0]
			if p.Seq < crashKillAt || tt.exact && p.Seq != crashKillAt {
				t.Fatalf("seq after SIGKILL = %d, want %s %d", p.Seq, map[bool]string{true: "", false: ">="}[tt.exact], crashKillAt)
			}
			// The record is from one batch: cursor and counters match its seq.
			if !bytes.Equal(p.Cursor, crashCursor(p.Seq)) || p.Docs != 10*p.Seq || p.Bytes != 100*p.Seq {
				t.Errorf("partition = %+v: cursor or counters do not match seq %d", p, p.Seq)
			}
			if parts[1].Seq != 0 || parts[1].Cursor != nil {
				t.Errorf("untouched partition = %+v", parts[1])
			}
			// The flow resumes: the next checkpoint follows the recovered one.
			if err := s.CheckpointPartition("crash", 0, p.Seq+1, crashCursor(p.Seq+1), false, 10, 100); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPowerLoss drops every write that was not fsynced, as a power loss
// would, and checks that acknowledged checkpoints survive. The control case
// shows the simulation does lose unsynced writes.
func TestPowerLoss(t *testing.T) {
	fs := vfs.NewStrictMem()
	s, err := Open("state", Options{fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	// Directory entries are only durable once their parent is synced.
	if err := syncDir(fs, ""); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "f", 2, 1)
	for seq := uint64(1); seq <= 3; seq++ {
		if err := s.CheckpointPartition("f", 1, seq, crashCursor(seq), false, 1, 1); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CheckpointUpdates("f", 0, 1, []byte("tok"), 4, testClock()()); err != nil {
		t.Fatal(err)
	}
	if err := s.PutVerify("run", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// Control: a write committed without fsync.
	if err := s.db.Set([]byte("unsynced"), []byte("x"), pebble.NoSync); err != nil {
		t.Fatal(err)
	}

	fs.SetIgnoreSyncs(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fs.ResetToSyncedState()
	fs.SetIgnoreSyncs(false)

	s = openMem(t, fs)
	if p := mustPartitions(t, s, "f")[1]; p.Seq != 3 || !bytes.Equal(p.Cursor, crashCursor(3)) {
		t.Errorf("partition after power loss = %+v, want seq 3", p)
	}
	if u := mustUpdates(t, s, "f")[0]; u.Seq != 1 || string(u.Cursor) != "tok" {
		t.Errorf("update partition after power loss = %+v, want seq 1", u)
	}
	if v, err := s.GetVerify("run", "k"); err != nil || string(v) != "v" {
		t.Errorf("verify value after power loss = %q, %v", v, err)
	}
	if _, ok, err := get(s.db, []byte("unsynced")); err != nil || ok {
		t.Errorf("unsynced write present = %t, %v; the simulation lost nothing", ok, err)
	}
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// TestCreateFlowTornWrite cuts the WAL at many points inside the CreateFlow
// batch, as a crash in the middle of the write would, and checks that every
// recovered store holds the whole flow or nothing of it.
func TestCreateFlowTornWrite(t *testing.T) {
	const nparts, nups = 40, 3
	fs := vfs.NewMem()
	s, err := Open("state", Options{fs: fs})
	if err != nil {
		t.Fatal(err)
	}
	wal, walSize := newestWAL(t, fs)
	meta, parts, ups := testFlow("f", nparts, nups)
	for i := range parts {
		// Large definitions spread the batch over several 32 KiB WAL blocks.
		parts[i].Definition = bytes.Repeat([]byte{byte(i)}, 2048)
	}
	if err := s.CreateFlow(meta, parts, ups); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w, _ := newestWAL(t, fs); w != wal {
		t.Fatalf("CreateFlow went to WAL %s, expected %s", w, wal)
	}
	// A snapshot of every file: vfs.Clone may share memory between the two
	// file systems, and recovery rewrites files in place.
	names, err := fs.List("state")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, n := range names {
		if p := fs.PathJoin("state", n); n != "LOCK" {
			files[p] = readFile(t, fs, p)
		}
	}
	full := files[wal]
	if len(full)-int(walSize) < 64<<10 {
		t.Fatalf("CreateFlow wrote only %d WAL bytes", len(full)-int(walSize))
	}

	cuts := []int{int(walSize), len(full) - 1, len(full)}
	for c := int(walSize) + 1; c < len(full); c += 1531 {
		cuts = append(cuts, c)
	}
	var absent, present int
	for _, cut := range cuts {
		crashed := vfs.NewMem()
		if err := crashed.MkdirAll("state", 0o700); err != nil {
			t.Fatal(err)
		}
		for p, data := range files {
			if p == wal {
				data = data[:cut]
			}
			writeFile(t, crashed, p, bytes.Clone(data))
		}

		s, err := Open("state", Options{fs: crashed})
		if err != nil {
			t.Fatalf("cut at %d of %d: Open: %v", cut, len(full), err)
		}
		_, err = s.Flow("f")
		switch {
		case errors.Is(err, ErrFlowNotFound):
			absent++
			if keys := rawKeys(t, s, flowsPrefix); len(keys) != 0 {
				t.Errorf("cut at %d: partial flow: %d keys", cut, len(keys))
			}
		case err == nil:
			present++
			if p, u := mustPartitions(t, s, "f"), mustUpdates(t, s, "f"); len(p) != nparts || len(u) != nups {
				t.Errorf("cut at %d: flow with %d partitions and %d update partitions, want %d and %d",
					cut, len(p), len(u), nparts, nups)
			}
		default:
			t.Errorf("cut at %d: Flow: %v", cut, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if absent == 0 || present == 0 {
		t.Errorf("flow absent after %d cuts and present after %d: the cuts missed the batch", absent, present)
	}
}

// newestWAL returns the path and size of the WAL file Pebble writes to.
func newestWAL(t *testing.T, fs vfs.FS) (string, int64) {
	t.Helper()
	names, err := fs.List("state")
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if strings.HasSuffix(n, ".log") {
			logs = append(logs, n)
		}
	}
	if len(logs) == 0 {
		t.Fatal("no WAL file")
	}
	slices.Sort(logs)
	path := fs.PathJoin("state", logs[len(logs)-1])
	fi, err := fs.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return path, fi.Size()
}

func readFile(t *testing.T, fs vfs.FS, path string) []byte {
	t.Helper()
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, fs vfs.FS, path string, data []byte) {
	t.Helper()
	f, err := fs.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
