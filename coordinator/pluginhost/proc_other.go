//go:build !unix

package pluginhost

import "os/exec"

func setProcAttrs(*exec.Cmd) {}

func killGroup(int) {}
