package sdktest

import (
	"context"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/dsyncio/dsync/sdk"
)

// firstBatchWait bounds the wait for a stream's first response: an idle
// source sends a heartbeat at least every 5 seconds.
const firstBatchWait = 12 * time.Second

// caseCancelUnary: calls with a canceled or expired context, or a deadline
// that expires during the call, return promptly with a cancellation error,
// and leave the plugin usable.
func caseCancelUnary(e *env) {
	t := e.t
	p, info := e.start()
	type call struct {
		name string
		do   func(ctx context.Context) error
	}
	calls := []call{{"GetInfo", func(ctx context.Context) error { _, err := p.C.Info(ctx); return err }}}
	var large []bson.Raw
	if src := info.Source; src != nil {
		nss := e.planNamespaces(info)
		plan := e.plan(p.C, info, nss, true, false)
		part := plan.Partitions[0]
		calls = append(calls,
			call{"GeneratePlan", func(ctx context.Context) error {
				_, err := p.C.GeneratePlan(ctx, sdk.PlanRequest{Namespaces: nss, InitialSync: true, Updates: src.Updates})
				return err
			}},
			call{"ListData", func(ctx context.Context) error { _, err := p.C.ListData(ctx, part, nil); return err }},
			call{"GetNamespaceMetadata", func(ctx context.Context) error {
				_, err := p.C.NamespaceMetadata(ctx, part.Namespace)
				return err
			}},
		)
		if src.GetByIDs {
			calls = append(calls, call{"GetByIds", func(ctx context.Context) error {
				_, err := p.C.GetByIDs(ctx, part.Namespace, []bson.RawValue{mustID("sdktest-cancel")})
				return err
			}})
		}
	}
	if info.Sink != nil {
		ns := e.h.SinkNamespace
		doc := mustDoc(bson.D{{Key: "_id", Value: "sdktest-cancel"}, {Key: "v", Value: int32(1)}})
		calls = append(calls,
			call{"WriteData", func(ctx context.Context) error { return p.C.WriteData(ctx, ns, []bson.Raw{doc}) }},
			call{"WriteUpdates", func(ctx context.Context) error {
				return p.C.WriteUpdates(ctx, ns, []sdk.Update{{ID: mustID("sdktest-cancel"), Type: sdk.UpdateDelete}})
			}},
		)
		large = []bson.Raw{mustDoc(bson.D{{Key: "_id", Value: "sdktest-cancel-large"}, {Key: "payload", Value: strings.Repeat("c", largeDocBytes)}})}
	}

	for _, c := range calls {
		canceled, cancel := context.WithCancel(e.ctx)
		cancel()
		checkCanceledCall(canceled, t, c.name+" with a canceled context", c.do, false)
		expired, cancel := context.WithDeadline(e.ctx, time.Now().Add(-time.Second))
		checkCanceledCall(expired, t, c.name+" with an expired deadline", c.do, false)
		cancel()
	}
	if large != nil {
		// The deadline expires while the request is still in flight.
		ctx, cancel := context.WithTimeout(e.ctx, time.Millisecond)
		checkCanceledCall(ctx, t, "WriteData of a 5 MiB document with a 1 ms deadline", func(ctx context.Context) error {
			return p.C.WriteData(ctx, e.h.SinkNamespace, large)
		}, true)
		cancel()
	}
	ctx, cancel := context.WithTimeout(e.ctx, prompt)
	defer cancel()
	if _, err := p.C.Info(ctx); err != nil {
		t.Errorf("GetInfo after the canceled calls: %s; canceled calls must leave the plugin usable", describeErr(err))
	}
}

// checkCanceledCall runs call with ctx and checks that it returns within
// prompt with a cancellation error; mayPass allows success for calls whose
// deadline may not expire before they complete.
func checkCanceledCall(ctx context.Context, t TB, what string, call func(context.Context) error, mayPass bool) {
	t.Helper()
	start := time.Now()
	err := call(ctx)
	took := time.Since(start)
	if took > prompt {
		t.Errorf("%s returned after %v; it must return within %v", what, took.Round(time.Millisecond), prompt)
	}
	switch {
	case err == nil && !mayPass:
		t.Errorf("%s succeeded; it must fail with CANCELED or DEADLINE_EXCEEDED", what)
	case err != nil && !endedByContext(ctx, err):
		t.Errorf("%s failed with %s; want a CANCELED or DEADLINE_EXCEEDED error", what, describeErr(err))
	}
}

// caseCancelStream: an update stream canceled mid-way ends promptly, the
// plugin stays usable, the stream can be reopened at once, and a stream
// deadline ends it with a deadline error.
func caseCancelStream(e *env) {
	t := e.t
	p, info := e.start()
	e.requireSource(info)
	if !info.Source.Updates {
		t.Skipf("the source does not claim the updates capability")
	}
	nss := e.planNamespaces(info)
	plan := e.plan(p.C, info, nss, false, true)
	if len(plan.UpdatesPartitions) == 0 {
		t.Fatalf("GeneratePlan(updates true) returned no update partitions")
	}
	up := plan.UpdatesPartitions[0]
	req := sdk.StreamRequest{Namespaces: up.Namespaces, Cursor: up.Cursor}

	for _, attempt := range []string{"first stream", "stream reopened at once from the same cursor"} {
		ctx, cancel := context.WithCancel(e.ctx)
		first := make(chan struct{})
		done := make(chan error, 1)
		got := false
		go func() {
			done <- p.C.StreamUpdates(ctx, req, func(sdk.UpdateBatch) error {
				if !got {
					got = true
					close(first)
				}
				return nil
			})
		}()
		select {
		case <-first:
		case err := <-done:
			cancel()
			t.Fatalf("%s: StreamUpdates ended before its first response: %s", attempt, describeErr(err))
		case <-time.After(firstBatchWait):
			t.Errorf("%s: no response within %v; an idle source must send a heartbeat at least every 5 seconds", attempt, firstBatchWait)
		}
		cancel()
		start := time.Now()
		select {
		case err := <-done:
			if !isCanceled(err) {
				t.Errorf("%s: StreamUpdates canceled mid-way ended with %s; want a CANCELED error", attempt, describeErr(err))
			}
		case <-time.After(prompt):
			t.Errorf("%s: StreamUpdates did not return within %v of its context being canceled", attempt, prompt)
			<-done
		}
		took := time.Since(start)
		t.Logf("%s: returned %v after cancel", attempt, took.Round(time.Microsecond))

		infoCtx, cancelInfo := context.WithTimeout(e.ctx, prompt)
		_, err := p.C.Info(infoCtx)
		cancelInfo()
		if err != nil {
			t.Errorf("GetInfo right after the %s was canceled: %s; the plugin must stay usable", attempt, describeErr(err))
		}
	}

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(e.ctx, deadline)
	defer cancel()
	start := time.Now()
	err := p.C.StreamUpdates(ctx, req, func(sdk.UpdateBatch) error { return nil })
	took := time.Since(start)
	switch {
	case took > deadline+prompt:
		t.Errorf("StreamUpdates with a %v deadline returned after %v", deadline, took.Round(time.Millisecond))
	case err == nil || !endedByContext(ctx, err):
		t.Errorf("StreamUpdates with a %v deadline ended after %v with %s; want DEADLINE_EXCEEDED", deadline, took.Round(time.Millisecond), describeErr(err))
	}
}
