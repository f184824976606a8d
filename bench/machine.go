package main

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the figures were measured.
type machine struct {
	CPU      string // model name from /proc/cpuinfo
	CPUs     int    // logical CPUs listed in /proc/cpuinfo
	Usable   int    // logical CPUs this process may run on
	MemBytes uint64
	Kernel   string
	GoBench  string // Go of this program
	GoDSync  string // Go that built the dsync executable
	Revision string // VCS revision of the dsync executable, "+dirty" if modified
}

func readMachine(dsync string) machine {
	m := machine{CPU: "unknown", Usable: runtime.NumCPU(), Kernel: "unknown", GoBench: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				m.CPUs++
			case "model name":
				m.CPU = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	if st, err := readStatus("/proc/meminfo"); err == nil {
		m.MemBytes = st["MemTotal"]
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if bi, err := buildinfo.ReadFile(dsync); err == nil {
		m.GoDSync = bi.GoVersion
		var rev string
		var dirty bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
		m.Revision = rev
	}
	return m
}

// cores describes the CPU count, noting a narrower affinity.
func (m machine) cores() string {
	if m.CPUs == 0 || m.CPUs == m.Usable {
		return strconv.Itoa(m.Usable)
	}
	return fmt.Sprintf("%d (%d usable by the benchmark)", m.CPUs, m.Usable)
}

// readStatus reads the "Key: value kB" lines of a /proc status or meminfo
// file, in bytes. Other lines are skipped.
func readStatus(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		out[k] = n << 10
	}
	return out, nil
}

// loadAvg returns the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
