package progress

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func snap(at time.Time, docs uint64) Snapshot {
	return Snapshot{
		Time: at, FlowID: "f1", Phase: "copy",
		Namespaces: []Namespace{
			{Name: "db.b", Docs: docs, Bytes: docs * 1000, EstimatedDocs: 1000, PartitionsDone: 1, PartitionsAll: 2},
			{Name: "db.a", Docs: docs, Bytes: docs * 1000, EstimatedDocs: 1000, PartitionsDone: 2, PartitionsAll: 2},
		},
		PartitionsDone: 3, PartitionsTotal: 4,
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	r := NewJSON(&buf)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.Update(snap(t0, 100))
	r.Update(snap(t0.Add(time.Second), 300))
	final := snap(t0.Add(2*time.Second), 500)
	final.Phase, final.Events, final.Lag = "cdc", 42, 1500*time.Millisecond
	r.Close(final)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	var second, last JSONLine
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if second.Docs != 600 || second.DocsPerSec != 400 || second.MBPerSec != 0.4 || second.PartitionsDone != 3 || second.PartitionsTotal != 4 {
		t.Errorf("second line = %+v", second)
	}
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatal(err)
	}
	if !last.Final || last.CDCEvents != 42 || last.CDCLagSeconds != 1.5 || last.Phase != "cdc" {
		t.Errorf("final line = %+v", last)
	}
	want := `{"time":"2026-01-02T03:04:05Z","flow":"f1","phase":"copy","docs":200,"bytes":200000,"docs_per_sec":0,"mb_per_sec":0,"partitions_done":3,"partitions_total":4,"cdc_events":0,"cdc_lag_seconds":0}`
	if lines[0] != want {
		t.Errorf("first line:\n got %s\nwant %s", lines[0], want)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	m := NewMetrics()
	if err := m.Serve("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s := snap(time.Now(), 7)
	s.Events, s.Lag = 9, 2*time.Second
	m.Update(s)
	resp, err := http.Get("http://" + m.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`dsync_copy_docs{namespace="db.a"} 7`,
		`dsync_copy_bytes{namespace="db.b"} 7000`,
		`dsync_partitions_total 4`,
		`dsync_cdc_events_applied 9`,
		`dsync_cdc_lag_seconds 2`,
		`dsync_phase{phase="copy"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	m.Close(s)
	if _, err := http.Get("http://" + m.Addr() + "/metrics"); err == nil {
		t.Error("server still answering after Close")
	}
}

func TestTTYRendersBars(t *testing.T) {
	var buf bytes.Buffer
	r := NewTTY(&buf)
	t0 := time.Now()
	r.Update(snap(t0, 10))
	s := snap(t0.Add(time.Second), 1000)
	s.Namespaces[0].PartitionsDone = 2
	r.Close(s)
	out := buf.String()
	for _, want := range []string{"db.a", "db.b", "docs"} {
		if !strings.Contains(out, want) {
			t.Errorf("tty output lacks %q:\n%s", want, out)
		}
	}
}
