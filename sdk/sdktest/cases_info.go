package sdktest

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	"github.com/dsyncio/dsync/internal/wire"
	"github.com/dsyncio/dsync/sdk"
)

// probeWait is how long a capability probe keeps a stream open.
const probeWait = time.Second

// caseGetInfo: GetInfo after Configure describes the connector completely
// and the same way each time.
func caseGetInfo(e *env) {
	t := e.t
	p, info := e.start()
	if info.ID == "" {
		t.Errorf("GetInfo: id is empty; it must identify the dataset (the same database gives the same id)")
	}
	if info.DBType == "" {
		t.Errorf("GetInfo: db_type is empty; it must name the kind of database, e.g. %q", "mongodb")
	}
	if info.ProtocolVersion != sdk.ProtocolVersion {
		t.Errorf("GetInfo: protocol_version is %d, want %d", info.ProtocolVersion, sdk.ProtocolVersion)
	}
	if info.Source == nil && info.Sink == nil {
		t.Errorf("GetInfo: capabilities claim neither a source nor a sink; a connector must be at least one")
	}
	if info.Source != nil && len(info.Source.DataTypes) == 0 {
		t.Errorf("GetInfo: source capabilities list no supported_data_types")
	}
	if info.Sink != nil && len(info.Sink.DataTypes) == 0 {
		t.Errorf("GetInfo: sink capabilities list no supported_data_types")
	}
	if pw := urlPassword(e.url); pw != "" && strings.Contains(info.ID, pw) {
		t.Errorf("GetInfo: id %q contains the password of the connection string; it must not hold secrets", info.ID)
	}
	again, err := p.C.Info(e.ctx)
	if err != nil {
		t.Fatalf("second GetInfo: %s", describeErr(err))
	}
	if !reflect.DeepEqual(info, again) {
		t.Errorf("GetInfo is not stable: two calls returned %s and %s", infoString(info), infoString(again))
	}
}

// caseIDStable: the dataset id survives a restart of the plugin.
func caseIDStable(e *env) {
	t := e.t
	p, first := e.start()
	_, second := e.restart(p)
	if first.ID != second.ID {
		t.Errorf("GetInfo id changed across a restart with the same URL: %q, then %q; the coordinator keys its checkpoints by it", first.ID, second.ID)
	}
	if first.DBType != second.DBType {
		t.Errorf("GetInfo db_type changed across a restart: %q, then %q", first.DBType, second.DBType)
	}
	if !reflect.DeepEqual(first.Source, second.Source) || !reflect.DeepEqual(first.Sink, second.Sink) {
		t.Errorf("GetInfo capabilities changed across a restart with the same URL: %s, then %s", infoString(first), infoString(second))
	}
}

// caseCapabilities: every claimed capability works, and the harness's
// expectations are claimed.
func caseCapabilities(e *env) {
	t := e.t
	p, info := e.start()
	want := e.h.Expect
	if want.Source && info.Source == nil {
		t.Errorf("Harness.Expect.Source is set, but GetInfo claims no source capabilities")
	}
	if want.Updates && (info.Source == nil || !info.Source.Updates) {
		t.Errorf("Harness.Expect.Updates is set, but GetInfo does not claim the updates capability")
	}
	if want.GetByIDs && (info.Source == nil || !info.Source.GetByIDs) {
		t.Errorf("Harness.Expect.GetByIDs is set, but GetInfo does not claim the get_by_ids capability")
	}
	if want.Sink && info.Sink == nil {
		t.Errorf("Harness.Expect.Sink is set, but GetInfo claims no sink capabilities")
	}
	if src := info.Source; src != nil {
		nss := e.planNamespaces(info)
		plan, err := p.C.GeneratePlan(e.ctx, sdk.PlanRequest{Namespaces: nss, InitialSync: true, Updates: src.Updates})
		switch {
		case sdk.KindOf(err) == sdk.KindUnimplemented:
			t.Errorf("GetInfo claims a source, but GeneratePlan is unimplemented: %s", describeErr(err))
		case err != nil:
			t.Errorf("GetInfo claims a source, but GeneratePlan(namespaces %q) failed: %s", nss, describeErr(err))
		}
		if err == nil && src.Updates {
			if len(plan.UpdatesPartitions) == 0 {
				t.Errorf("GetInfo claims the updates capability, but GeneratePlan(updates true) returned no update partitions")
			} else {
				up := plan.UpdatesPartitions[0]
				err := probeStream(e.ctx, func(ctx context.Context, stop func()) error {
					return p.C.StreamUpdates(ctx, sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor},
						func(sdk.UpdateBatch) error { stop(); return nil })
				})
				checkClaimed(t, "updates", "StreamUpdates", err)
			}
		}
		if err == nil && src.GetByIDs {
			ns, ids := firstIDs(e, p.C, plan, 1)
			if ns != "" {
				docs, err := p.C.GetByIDs(e.ctx, ns, ids)
				checkClaimed(t, "get_by_ids", "GetByIds", err)
				if err == nil && (len(docs) != 1 || docs[0] == nil) {
					t.Errorf("GetByIds(%q, [%s]) did not return the document ListData returned for that id", ns, idString(ids[0]))
				}
			}
		}
		if err == nil && src.LSNStream && len(plan.UpdatesPartitions) > 0 {
			up := plan.UpdatesPartitions[0]
			err := probeStream(e.ctx, func(ctx context.Context, stop func()) error {
				return p.C.StreamLSN(ctx, sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor},
					func(uint64) error { stop(); return nil })
			})
			checkClaimed(t, "lsn_stream", "StreamLSN", err)
		}
	}
	if info.Sink != nil {
		doc := mustDoc(bson.D{{Key: "_id", Value: "sdktest-capability-probe"}, {Key: "probe", Value: true}})
		err := p.C.WriteData(e.ctx, e.h.SinkNamespace, []bson.Raw{doc})
		checkClaimed(t, "sink", "WriteData", err)
	}
}

// checkClaimed reports a claimed capability whose call failed.
func checkClaimed(t TB, capability, call string, err error) {
	t.Helper()
	switch {
	case err == nil:
	case sdk.KindOf(err) == sdk.KindUnimplemented:
		t.Errorf("GetInfo claims the %s capability, but %s is unimplemented: %s", capability, call, describeErr(err))
	default:
		t.Errorf("GetInfo claims the %s capability, but %s failed: %s", capability, call, describeErr(err))
	}
}

// probeStream runs a streaming call for at most probeWait; stopping it, by
// stop or by the time limit, is not an error.
func probeStream(ctx context.Context, call func(ctx context.Context, stop func()) error) error {
	ctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	err := call(ctx, cancel)
	if err != nil && endedByContext(ctx, err) {
		return nil
	}
	return err
}

// firstIDs returns a namespace and up to n ids of documents of the first
// partition that has any, or "" when the plan has no documents.
func firstIDs(e *env, src sdk.Source, plan sdk.Plan, n int) (string, []bson.RawValue) {
	e.t.Helper()
	for _, part := range plan.Partitions {
		page, err := src.ListData(e.ctx, part, nil)
		if err != nil {
			e.t.Fatalf("ListData(partition %s, first page): %s", partitionString(part), describeErr(err))
		}
		var ids []bson.RawValue
		for _, d := range page.Docs {
			if id, ok := docID(d); ok && len(ids) < n {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			return part.Namespace, ids
		}
	}
	e.t.Logf("the plan's first pages hold no documents: GetByIds not probed")
	return "", nil
}

// caseBeforeConfigure: calls before Configure fail with FAILED_PRECONDITION.
func caseBeforeConfigure(e *env) {
	t := e.t
	p := e.launch()
	_, errInfo := p.C.Info(e.ctx)
	_, errPlan := p.C.GeneratePlan(e.ctx, sdk.PlanRequest{Namespaces: e.h.Namespaces, InitialSync: true})
	probe := mustDoc(bson.D{{Key: "_id", Value: "sdktest-before-configure"}})
	errWrite := p.C.WriteData(e.ctx, e.h.SinkNamespace, []bson.Raw{probe})

	switch {
	case errInfo == nil:
		t.Errorf("GetInfo before Configure succeeded; it must fail with FAILED_PRECONDITION")
	case sdk.KindOf(errInfo) != sdk.KindFailedPrecondition:
		t.Errorf("GetInfo before Configure: got %s; want kind %q (gRPC FAILED_PRECONDITION)", describeErr(errInfo), sdk.KindFailedPrecondition)
	}

	if err := p.configure(e.ctx); err != nil {
		t.Fatalf("Configure with the harness URL: %s%s", describeErr(err), e.log.tailNote())
	}
	info, err := p.C.Info(e.ctx)
	if err != nil {
		t.Fatalf("GetInfo after Configure: %s", describeErr(err))
	}
	checkBefore(t, "GeneratePlan", info.Source != nil, errPlan)
	checkBefore(t, "WriteData", info.Sink != nil, errWrite)
}

// checkBefore checks the error of a call made before Configure: a call of
// the plugin's role must fail with FAILED_PRECONDITION; one of a role it
// does not have may also fail with UNIMPLEMENTED.
func checkBefore(t TB, call string, hasRole bool, err error) {
	t.Helper()
	k := sdk.KindOf(err)
	switch {
	case err == nil:
		t.Errorf("%s before Configure succeeded; it must fail with FAILED_PRECONDITION", call)
	case k == sdk.KindFailedPrecondition:
	case k == sdk.KindUnimplemented && !hasRole:
	default:
		t.Errorf("%s before Configure: got %s; want kind %q (gRPC FAILED_PRECONDITION)", call, describeErr(err), sdk.KindFailedPrecondition)
	}
}

// caseBadURLs: Configure rejects bad connection strings with
// INVALID_ARGUMENT and a one-line message.
func caseBadURLs(e *env) {
	t := e.t
	bad := e.h.BadURLs(e.url)
	if len(bad) == 0 {
		t.Skipf("Harness.BadURLs returned no connection strings")
	}
	pw := urlPassword(e.url)
	p := e.launch()
	for _, u := range bad {
		err := p.C.Configure(e.ctx, sdk.Config{URL: u, Settings: e.h.Settings})
		if err == nil {
			t.Errorf("Configure(%q) succeeded; it must fail with INVALID_ARGUMENT", u)
			// This plugin is configured now: use a fresh one for the rest.
			p.stop()
			p = e.launch()
			continue
		}
		if k := sdk.KindOf(err); k != sdk.KindInvalidArgument {
			t.Errorf("Configure(%q): got %s; want kind %q (gRPC INVALID_ARGUMENT) with a message that says what to change", u, describeErr(err), sdk.KindInvalidArgument)
			continue
		}
		msg := err.Error()
		if !oneLine(msg) {
			t.Errorf("Configure(%q): the INVALID_ARGUMENT message must be one non-empty line a user can act on; got %q", u, msg)
		}
		if pw != "" && strings.Contains(msg, pw) {
			t.Errorf("Configure(%q): the error message contains the password of the connection string", u)
		}
	}
	_, err := p.C.Info(e.ctx)
	if err == nil {
		t.Errorf("GetInfo succeeded after Configure failed for every bad URL; the plugin must stay unconfigured (FAILED_PRECONDITION)")
	} else if sdk.KindOf(err) != sdk.KindFailedPrecondition {
		t.Errorf("GetInfo after failed Configure calls: got %s; want kind %q", describeErr(err), sdk.KindFailedPrecondition)
	}
}

// caseInvalidArgumentClass: an invalid-argument error keeps its class
// across gRPC, so the coordinator shows it to the user instead of
// retrying or reporting an internal error.
func caseInvalidArgumentClass(e *env) {
	t := e.t
	p := e.launch()
	const bad = "::not a url"
	err := p.C.Configure(e.ctx, sdk.Config{URL: bad, Settings: e.h.Settings})
	if err == nil {
		t.Fatalf("Configure(%q) succeeded; it must fail with INVALID_ARGUMENT", bad)
	}
	if code := wire.Code(err); code != codes.InvalidArgument {
		hint := ""
		if code == codes.Internal || code == codes.Unknown {
			hint = ": the plugin returned an unclassified error; mark it with sdk.InvalidArgument"
		}
		t.Errorf("Configure(%q) failed with gRPC code %s, want InvalidArgument%s (%s)", bad, code, hint, describeErr(err))
	}
	if k := sdk.KindOf(err); k != sdk.KindInvalidArgument {
		t.Errorf("Configure(%q): the host sees kind %q, want %q (%s)", bad, k, sdk.KindInvalidArgument, describeErr(err))
	}
	if sdk.IsRetryable(err) {
		t.Errorf("Configure(%q): the error is retryable; bad input must not be retried (%s)", bad, describeErr(err))
	}
}

// caseUnimplementedClass: RPCs outside the plugin's capabilities fail with
// UNIMPLEMENTED, not with an internal error.
func caseUnimplementedClass(e *env) {
	t := e.t
	p, info := e.start()
	type check struct {
		call string
		// role is true when not having it is a matter of role (not a source
		// or sink) rather than of an optional capability.
		role bool
		do   func() error
	}
	streamUpdates := func() error {
		return probeStream(e.ctx, func(ctx context.Context, stop func()) error {
			return p.C.StreamUpdates(ctx, sdk.StreamRequest{Namespaces: e.h.Namespaces},
				func(sdk.UpdateBatch) error { stop(); return nil })
		})
	}
	streamLSN := func() error {
		return probeStream(e.ctx, func(ctx context.Context, stop func()) error {
			return p.C.StreamLSN(ctx, sdk.StreamRequest{Namespaces: e.h.Namespaces},
				func(uint64) error { stop(); return nil })
		})
	}
	getByIDs := func() error {
		_, err := p.C.GetByIDs(e.ctx, "sdktest.none", []bson.RawValue{mustID("sdktest-none")})
		return err
	}
	var checks []check
	if src := info.Source; src == nil {
		checks = append(checks,
			check{"GeneratePlan", true, func() error {
				_, err := p.C.GeneratePlan(e.ctx, sdk.PlanRequest{InitialSync: true})
				return err
			}},
			check{"ListData", true, func() error {
				_, err := p.C.ListData(e.ctx, sdk.Partition{Namespace: "sdktest.none"}, nil)
				return err
			}},
			check{"GetNamespaceMetadata", true, func() error {
				_, err := p.C.NamespaceMetadata(e.ctx, "sdktest.none")
				return err
			}},
			check{"StreamUpdates", true, streamUpdates},
			check{"GetByIds", true, getByIDs},
			check{"StreamLSN", true, streamLSN},
		)
	} else {
		if !src.Updates {
			checks = append(checks, check{"StreamUpdates", false, streamUpdates})
		}
		if !src.GetByIDs {
			checks = append(checks, check{"GetByIds", false, getByIDs})
		}
		if !src.LSNStream {
			checks = append(checks, check{"StreamLSN", false, streamLSN})
		}
	}
	if info.Sink == nil {
		doc := mustDoc(bson.D{{Key: "_id", Value: "sdktest-none"}})
		checks = append(checks,
			check{"WriteData", true, func() error { return p.C.WriteData(e.ctx, e.h.SinkNamespace, []bson.Raw{doc}) }},
			check{"WriteUpdates", true, func() error {
				return p.C.WriteUpdates(e.ctx, e.h.SinkNamespace, []sdk.Update{{ID: mustID("sdktest-none"), Type: sdk.UpdateDelete}})
			}},
		)
	}
	if len(checks) == 0 {
		t.Skipf("the plugin is a source with updates, get_by_ids and lsn_stream and a sink: it has no unimplemented RPC to check")
	}
	for _, c := range checks {
		err := c.do()
		switch {
		case err == nil && c.role:
			t.Errorf("%s succeeded although GetInfo claims no %s role; it must fail with UNIMPLEMENTED", c.call, roleOf(c.call))
		case err == nil:
			t.Logf("%s works although GetInfo does not claim its capability: claim it so the coordinator can use it", c.call)
		case sdk.KindOf(err) != sdk.KindUnimplemented:
			t.Errorf("%s, which the plugin does not claim, failed with %s; want kind %q (gRPC UNIMPLEMENTED)", c.call, describeErr(err), sdk.KindUnimplemented)
		case wire.Code(err) != codes.Unimplemented:
			t.Errorf("%s: kind is unimplemented but the gRPC code is %s, want Unimplemented", c.call, wire.Code(err))
		}
	}
}

func roleOf(call string) string {
	if strings.HasPrefix(call, "Write") {
		return "sink"
	}
	return "source"
}

func mustID(v any) bson.RawValue {
	rv, err := rawID(v)
	if err != nil {
		panic(err)
	}
	return rv
}

func urlPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return ""
	}
	pw, _ := u.User.Password()
	return pw
}

func infoString(info sdk.Info) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{id %q, db_type %q, version %q, protocol %d", info.ID, info.DBType, info.Version, info.ProtocolVersion)
	if s := info.Source; s != nil {
		fmt.Fprintf(&b, ", source %+v", *s)
	}
	if s := info.Sink; s != nil {
		fmt.Fprintf(&b, ", sink %+v", *s)
	}
	b.WriteString("}")
	return b.String()
}
