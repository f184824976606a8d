package null

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/dsyncio/dsync/sdk"
)

// failMode says which write calls a rule fails.
type failMode int

const (
	failAlways failMode = iota // KIND
	failFirst                  // KIND:N, calls 1..N
	failAfter                  // KIND@N, once N items are accepted
	failEvery                  // KIND-every:N, calls N, 2N, ...
)

type failRule struct {
	text string
	kind sdk.ErrorKind
	mode failMode
	n    uint64
}

const failExamples = "write e.g. fail=fatal, fail=retryable:3, fail=fatal@100 or fail=retryable-every:10,fatal@1000"

// parseFail parses a comma-separated list of rules.
func parseFail(spec string) ([]failRule, error) {
	if spec == "" {
		return nil, nil
	}
	var rules []failRule
	for _, text := range strings.Split(spec, ",") {
		r, err := parseRule(text)
		if err != nil {
			return nil, sdk.InvalidArgument("null: fail=%q: %v: %s", spec, err, failExamples)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(text string) (failRule, error) {
	r := failRule{text: text}
	kind, num := text, ""
	var ok bool
	switch {
	case strings.Contains(text, "-every:"):
		kind, num, _ = strings.Cut(text, "-every:")
		r.mode = failEvery
	case strings.Contains(text, "@"):
		kind, num, _ = strings.Cut(text, "@")
		r.mode = failAfter
	case strings.Contains(text, ":"):
		kind, num, _ = strings.Cut(text, ":")
		r.mode = failFirst
	}
	if r.kind, ok = map[string]sdk.ErrorKind{"retryable": sdk.KindRetryable, "fatal": sdk.KindFatal}[kind]; !ok {
		return r, fmt.Errorf("rule %q: unknown kind %q (use retryable or fatal)", text, kind)
	}
	if r.mode == failAlways {
		return r, nil
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil || (n == 0 && r.mode != failAfter) {
		return r, fmt.Errorf("rule %q: %q is not a count (use an integer >= 1, or >= 0 after @)", text, num)
	}
	r.n = n
	return r, nil
}

// matches reports whether the rule fails write call number call (from 1)
// when accepted documents and updates have been accepted before it.
func (r failRule) matches(call, accepted uint64) bool {
	switch r.mode {
	case failFirst:
		return call <= r.n
	case failAfter:
		return accepted >= r.n
	case failEvery:
		return call%r.n == 0
	}
	return true
}

func (r failRule) err(call uint64) error {
	err := fmt.Errorf("%w: write call %d (fail rule %s)", ErrInjected, call, r.text)
	if r.kind == sdk.KindRetryable {
		return sdk.Retryable(err)
	}
	return sdk.Fatal(err)
}
