package coordinator

import (
	"testing"

	"go.uber.org/goleak"
)

// Every run must stop all the goroutines it started.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
