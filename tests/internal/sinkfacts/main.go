// Command sinkfacts prints what a testsink store holds, as one JSON object:
// the number of documents per namespace and in total, and the store's write
// counters; all zero when DIR holds no store (yet). The end-to-end tests run
// it, built without the race detector, to inspect a store between crashes
// cheaply.
//
//	sinkfacts DIR
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/dsyncio/dsync/tests/testsink"
)

// Facts is the output.
type Facts struct {
	Docs      map[string]int    `json:"docs"`
	TotalDocs int               `json:"total_docs"`
	Counters  testsink.Counters `json:"counters"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sinkfacts DIR")
		os.Exit(2)
	}
	f, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sinkfacts:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(f); err != nil {
		fmt.Fprintln(os.Stderr, "sinkfacts:", err)
		os.Exit(1)
	}
}

func read(dir string) (f Facts, err error) {
	s, err := testsink.Open(dir)
	if errors.Is(err, testsink.ErrNotExist) {
		return Facts{Docs: map[string]int{}}, nil
	}
	if err != nil {
		return Facts{}, err
	}
	defer func() {
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}()
	nss, err := s.Namespaces()
	if err != nil {
		return Facts{}, err
	}
	f.Docs = map[string]int{}
	for _, ns := range nss {
		n, err := s.Count(ns)
		if err != nil {
			return Facts{}, err
		}
		f.Docs[ns] = n
		f.TotalDocs += n
	}
	f.Counters, err = s.Counters()
	return f, err
}
