package sdktest_test

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/dsyncio/dsync/sdk/sdktest"
)

// RunCases runs the suite outside go test, e.g. to print a table.
func ExampleRunCases() {
	h := sdktest.Harness{
		Command: func() *exec.Cmd { return exec.Command("/usr/local/bin/dsync-connector-foo") },
		URL:     func(sdktest.TB) string { return "foo://localhost/app" },
	}
	results, err := sdktest.RunCases(context.Background(), h, func(r sdktest.CaseResult) {
		fmt.Printf("%-40s %s %v\n", r.Name, r.Status, r.Duration)
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range results {
		if r.Status == sdktest.StatusFail {
			fmt.Printf("\n%s:\n%s\n", r.Name, r.Reason)
		}
	}
}
