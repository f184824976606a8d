// Package null is the null:// sink: it accepts every write, keeps nothing and
// counts what it was given ([Connector.Counts]). It measures the coordinator
// and sources without a database behind, and injects slowness and failures
// into coordinator tests.
//
// # URL
//
//	null://?delay=10ms&fail=SPEC
//
// Both options are optional and may be given as connector settings instead.
// An unknown, repeated or invalid option fails Configure with
// sdk.InvalidArgument. Info.ID is "null" whatever the options.
//
//	delay  a Go duration slept in every write call (0 to 1h; default 0)
//	fail   failure injection rules (default none)
//
// # Writes
//
// WriteData and WriteUpdates check that each document has a consistent BSON
// length prefix and each update a type, an _id and (insert, replace) a
// document; malformed input is a fatal error, not counted. Then they honour
// ctx (cancelled before or during the delay: ctx.Err(), nothing counted),
// sleep the delay, evaluate the fail rules and, when none matches, count the
// documents or updates and their bytes. Write calls may run concurrently;
// counts are atomic.
//
// # Failure injection
//
// SPEC is a comma-separated list of rules; the first rule that matches a
// write call makes it fail, and a failed call counts nothing. Write calls are
// numbered from 1 across WriteData and WriteUpdates (see Counts.Calls).
// KIND is retryable or fatal.
//
//	KIND            every call fails
//	KIND:N          calls 1 to N fail, later ones succeed
//	KIND@N          calls fail once at least N documents and updates in
//	                total have been accepted (N=0 is every call)
//	KIND-every:N    calls N, 2N, 3N, ... fail
//
// Examples: fail=retryable:3 (three failed calls, then success), fail=fatal@100
// (the run stops after 100 documents), fail=retryable-every:10,fatal@1000.
// Injected errors wrap [ErrInjected] and are marked with sdk.Retryable or
// sdk.Fatal. Under concurrent writes, KIND@N may let a few calls past N: the
// count is read when each call starts.
package null
