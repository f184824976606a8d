package pluginhost

import (
	"os/exec"
	"syscall"
)

// setProcAttrs puts the plugin in its own process group (so that the whole
// group can be killed, children included) and makes the kernel send it
// SIGTERM when the host dies, even by SIGKILL. Linux ties the parent-death
// signal to the thread that forked the child; plugins served by the SDK
// also watch their parent (see wire.Serve) and can watch stdin for EOF.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
