//go:build !unix

package pluginhost

const socketDirPrefix = "dsync-plugins-"

func sweepStale(string) []string { return nil }
