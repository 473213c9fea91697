//go:build !linux

package main

import "os"

// datasync flushes f (fsync: there is no fdatasync here).
func datasync(f *os.File) error { return f.Sync() }
