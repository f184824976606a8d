package null

import (
	"testing"

	"go.uber.org/goleak"
)

// Streams and delayed writes must leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
