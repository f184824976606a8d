package null

import "errors"

// ErrInjected is wrapped by every error the fail option injects, marked
// retryable or fatal as the rule says. Test with errors.Is.
var ErrInjected = errors.New("null: injected failure")
