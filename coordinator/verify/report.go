package verify

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"
)

// errEnough stops a scan of the mismatches early.
var errEnough = errors.New("enough")

// WriteSummary writes the human summary of r: a table per namespace
// (documents compared, missing, extra, different, time), the first maxIDs
// open mismatches with the fields that differ (paths and kinds; values only
// go to the report), coverage problems, what rechecks and repair did, and
// a last line with the verdict.
func WriteSummary(w io.Writer, r *Result, maxIDs int) error {
	bw := bufio.NewWriter(w)
	if r.RunID != "" {
		fmt.Fprintf(bw, "verify %s: A %s vs B %s", r.RunID, r.A, r.B)
	} else {
		fmt.Fprintf(bw, "verify: A %s vs B %s", r.A, r.B)
	}
	if r.Resumed {
		fmt.Fprint(bw, " (resumed)")
	}
	fmt.Fprintln(bw)
	if r.CountOnly {
		writeCountTable(bw, r)
	} else if err := writeTable(bw, r, maxIDs); err != nil {
		return err
	}
	fmt.Fprintln(bw, "result:", verdict(r))
	return bw.Flush()
}

func nsName(n NamespaceResult) string {
	if n.BNamespace == n.Namespace || n.BNamespace == "" {
		return n.Namespace
	}
	return n.Namespace + " -> " + n.BNamespace
}

// nameColumn returns a function padding namespace names to one width, so
// that the first column is left-aligned in a right-aligned table.
func nameColumn(r *Result) func(string) string {
	w := len("NAMESPACE")
	for _, n := range r.Namespaces {
		w = max(w, utf8.RuneCountInString(nsName(n)))
	}
	return func(s string) string { return fmt.Sprintf("%-*s", w, s) }
}

func writeCountTable(w io.Writer, r *Result) {
	col := nameColumn(r)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tCOUNT A\tCOUNT B\tRESULT\t\n", col("NAMESPACE"))
	for _, n := range r.Namespaces {
		state := "equal"
		if n.CountA != n.CountB {
			state = "differ"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t\n", col(nsName(n)), n.CountA, n.CountB, state)
	}
	tw.Flush()
	fmt.Fprintln(w, "counts only: documents were not compared; counts may be the connectors' estimates")
}

func writeTable(w *bufio.Writer, r *Result, maxIDs int) error {
	col := nameColumn(r)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tCOMPARED\tMISSING\tEXTRA\tDIFFERENT\tSCAN TIME\t\n", col("NAMESPACE"))
	var tot NamespaceResult
	for _, n := range r.Namespaces {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t\n", col(nsName(n)), n.Compared, n.Missing, n.Extra, n.Different, fmtDuration(n.Time))
		tot.Compared += n.Compared
		tot.Missing += n.Missing
		tot.Extra += n.Extra
		tot.Different += n.Different
		tot.Time += n.Time
		tot.Resolved += n.Resolved
		tot.Repaired += n.Repaired
		tot.Written += n.Written
		tot.Deleted += n.Deleted
	}
	fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t\n", col("total"), tot.Compared, tot.Missing, tot.Extra, tot.Different, fmtDuration(tot.Time))
	if err := tw.Flush(); err != nil {
		return err
	}
	// Scan time adds up partitions scanned in parallel (and earlier runs of
	// a resumed verify); the elapsed time of this run is said apart.
	fmt.Fprintf(w, "elapsed %s (scan time sums the partitions, which run in parallel)\n", fmtDuration(r.Duration))

	// The first open mismatches, coverage problems included.
	open := uint64(0)
	for _, n := range r.Namespaces {
		open += n.Missing + n.Extra + n.Different + n.Duplicates + n.Unscanned
	}
	if open > 0 && maxIDs > 0 {
		fmt.Fprintf(w, "\nfirst %d of %d mismatching ids:\n", min(open, uint64(maxIDs)), open)
		shown := 0
		err := r.Mismatches(func(m Mismatch) error {
			if m.State != "open" {
				return nil
			}
			if shown == maxIDs {
				return errEnough
			}
			shown++
			fmt.Fprintf(w, "  %s _id %s: %s\n", m.Namespace, idText(m.ID), describe(m))
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return err
		}
		if open > uint64(maxIDs) {
			fmt.Fprintf(w, "  ... %d more (all are in --report)\n", open-uint64(maxIDs))
		}
	}

	var notes []string
	for _, n := range r.Namespaces {
		for _, c := range n.Counts {
			if !c.Short {
				continue
			}
			what := "coverage"
			if r.EstimatedCounts {
				what = "warning"
			}
			notes = append(notes, fmt.Sprintf("%s: %s: %s's scan returned %d distinct documents, but %s counts %d before and %d after the scan",
				what, nsName(n), c.Side, c.Distinct, c.Side, c.Before, c.After))
		}
	}
	if s := r.Sample; s != nil {
		notes = append(notes, fmt.Sprintf("sample: %g%% of the partitions (A %d of %d, B %d of %d; seed %d): documents outside them were not compared, and coverage was not checked",
			s.Percent, s.PartitionsA, s.PlannedA, s.PartitionsB, s.PlannedB, s.Seed))
	}
	if r.Recheck > 0 {
		notes = append(notes, fmt.Sprintf("recheck: %s after %s: %d transient differences resolved",
			plural(r.Rechecks, "attempt", "attempts"), r.Recheck, tot.Resolved))
	}
	if r.Repair {
		if tot.Repaired == 0 {
			notes = append(notes, "repair: nothing to repair")
		}
		for _, n := range r.Namespaces {
			if n.Repaired > 0 {
				notes = append(notes, fmt.Sprintf("repair: %s: %d documents written and %d deleted on B, then verified equal to A",
					nsName(n), n.Written, n.Deleted))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	return nil
}

func verdict(r *Result) string {
	switch d := r.Differences(); {
	case r.Stopped:
		return "stopped before the end; run the same command again to resume"
	case d == 0 && r.CountOnly:
		return "counts equal"
	case d == 0 && r.Sample != nil:
		return "identical within the sample"
	case d == 0:
		return "identical"
	case r.CountOnly:
		return plural(int(d), "namespace with different counts", "namespaces with different counts")
	default:
		var docs uint64
		for _, n := range r.Namespaces {
			docs += n.Missing + n.Extra + n.Different
		}
		if docs == d {
			return plural(int(d), "difference", "differences")
		}
		return fmt.Sprintf("%s: %s missing, extra or different, %s",
			plural(int(d), "difference", "differences"), plural(int(docs), "document", "documents"),
			plural(int(d-docs), "coverage problem", "coverage problems"))
	}
}

// describe says how one mismatch differs.
func describe(m Mismatch) string {
	switch m.Kind {
	case KindMissing:
		return "missing in B"
	case KindExtra:
		return "extra in B (not in A)"
	case KindDuplicateA, KindDuplicateB:
		s := "A"
		if m.Kind == KindDuplicateB {
			s = "B"
		}
		return fmt.Sprintf("returned %d times by %s's scan (coverage)", m.Count, s)
	case KindUnscannedA:
		return "A holds it, but A's scan did not return it (coverage)"
	case KindUnscannedB:
		return "B holds it, but B's scan did not return it (coverage)"
	}
	parts := make([]string, 0, len(m.Fields))
	for _, f := range m.Fields {
		parts = append(parts, describeField(f))
	}
	if m.FieldsTruncated {
		parts = append(parts, "…")
	}
	return "different: " + strings.Join(parts, "; ")
}

func describeField(f FieldDiff) string {
	switch f.Kind {
	case FieldMissingOnA:
		return f.Path + " missing in A"
	case FieldMissingOnB:
		return f.Path + " missing in B"
	case FieldType:
		return fmt.Sprintf("%s type differs (%s in A, %s in B)", f.Path, f.TypeA, f.TypeB)
	case FieldOrder:
		if f.Path == "" {
			return "field order differs"
		}
		return "field order differs in " + f.Path
	}
	if f.Path == "" {
		return "a repeated field name differs"
	}
	return f.Path + " value differs"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// ReportMismatch is a line of the JSON report for one mismatch.
type ReportMismatch struct {
	// Type is "mismatch" for a difference of data, "coverage" for a per-id
	// coverage problem.
	Type       string `json:"type"`
	Namespace  string `json:"namespace"`
	BNamespace string `json:"b_namespace"`
	// ID is the _id as canonical Extended JSON, which keeps its type.
	ID              json.RawMessage `json:"id"`
	Kind            Kind            `json:"kind"`
	State           string          `json:"state"`
	Fields          []FieldDiff     `json:"fields,omitempty"`
	FieldsTruncated bool            `json:"fields_truncated,omitempty"`
	Count           int             `json:"count,omitempty"`
	Rechecks        int             `json:"rechecks,omitempty"`
	Repair          string          `json:"repair,omitempty"`
}

// ReportSummary is the last line of the JSON report.
type ReportSummary struct {
	// Type is "summary".
	Type            string          `json:"type"`
	Run             string          `json:"run,omitempty"`
	A               string          `json:"a"`
	B               string          `json:"b"`
	Result          string          `json:"result"`
	Differences     uint64          `json:"differences"`
	Resumed         bool            `json:"resumed"`
	CountOnly       bool            `json:"count_only,omitempty"`
	EstimatedCounts bool            `json:"estimated_counts,omitempty"`
	Sample          *Sample         `json:"sample,omitempty"`
	RecheckSeconds  float64         `json:"recheck_seconds,omitempty"`
	Rechecks        int             `json:"rechecks,omitempty"`
	Repair          bool            `json:"repair,omitempty"`
	DurationSeconds float64         `json:"duration_seconds"`
	Namespaces      []ReportNSEntry `json:"namespaces"`
}

// ReportNSEntry is a namespace of the summary line.
type ReportNSEntry struct {
	Namespace  string       `json:"namespace"`
	BNamespace string       `json:"b_namespace"`
	Compared   uint64       `json:"compared"`
	ScannedB   uint64       `json:"scanned_b"`
	Missing    uint64       `json:"missing"`
	Extra      uint64       `json:"extra"`
	Different  uint64       `json:"different"`
	Duplicates uint64       `json:"duplicates"`
	Unscanned  uint64       `json:"unscanned"`
	Resolved   uint64       `json:"resolved"`
	Repaired   uint64       `json:"repaired"`
	Written    uint64       `json:"written"`
	Deleted    uint64       `json:"deleted"`
	Seconds    float64      `json:"seconds"`
	Counts     []CountCheck `json:"counts,omitempty"`
	CountA     *uint64      `json:"count_a,omitempty"`
	CountB     *uint64      `json:"count_b,omitempty"`
}

// WriteReport writes r as JSON lines: one line per stored mismatch (open,
// resolved by a recheck or repaired; see Mismatch) in namespace and id
// order, data differences before coverage problems, then one summary line.
// Field values in the lines are canonical Extended JSON cut to 80
// characters: the report may hold data of the documents.
func WriteReport(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := r.Mismatches(func(m Mismatch) error {
		typ := "mismatch"
		if m.Coverage() {
			typ = "coverage"
		}
		return enc.Encode(ReportMismatch{
			Type: typ, Namespace: m.Namespace, BNamespace: m.BNamespace, ID: json.RawMessage(idJSON(m.ID)), Kind: m.Kind,
			State: m.State, Fields: m.Fields, FieldsTruncated: m.FieldsTruncated, Count: m.Count,
			Rechecks: m.Rechecks, Repair: m.Repair,
		})
	})
	if err != nil {
		return err
	}
	result := "identical"
	switch {
	case r.Stopped:
		result = "stopped"
	case !r.Identical():
		result = "differences"
	}
	s := ReportSummary{
		Type: "summary", Run: r.RunID, A: r.A, B: r.B, Result: result, Differences: r.Differences(), Resumed: r.Resumed,
		CountOnly: r.CountOnly, EstimatedCounts: r.EstimatedCounts, Sample: r.Sample,
		RecheckSeconds: r.Recheck.Seconds(), Rechecks: r.Rechecks, Repair: r.Repair,
		DurationSeconds: r.Duration.Seconds(), Namespaces: []ReportNSEntry{},
	}
	for _, n := range r.Namespaces {
		e := ReportNSEntry{
			Namespace: n.Namespace, BNamespace: n.BNamespace, Compared: n.Compared, ScannedB: n.ScannedB,
			Missing: n.Missing, Extra: n.Extra, Different: n.Different, Duplicates: n.Duplicates, Unscanned: n.Unscanned,
			Resolved: n.Resolved, Repaired: n.Repaired, Written: n.Written, Deleted: n.Deleted,
			Seconds: n.Time.Seconds(), Counts: n.Counts,
		}
		if r.CountOnly {
			e.CountA, e.CountB = &n.CountA, &n.CountB
		}
		s.Namespaces = append(s.Namespaces, e)
	}
	if err := enc.Encode(s); err != nil {
		return err
	}
	return bw.Flush()
}
