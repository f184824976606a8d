//go:build unix

package pluginhost

import "syscall"

// killGroup sends SIGKILL to the process group led by pid, which the plugin
// leads (setProcAttrs), so that its children die with it.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
