package plugin

import (
	"fmt"
	"io"
	"log"
	"os"
)

// LogFileEnv names the environment variable that sends every netloom plugin's log lines to a file
// (appended, created 0600) instead of stderr: for a node where the runtime drops the plugins' stderr.
const LogFileEnv = "NETLOOM_LOG_FILE"

// setupLog makes the standard logger the plugin's one logger: lines prefixed "netloom <plugin>: " on
// stderr, or, with NETLOOM_LOG_FILE, appended to that file with time and process ID. Never stdout: it
// carries the CNI result. The returned function closes the file.
func setupLog(name string) func() {
	log.SetFlags(0)
	log.SetPrefix("netloom " + name + ": ")
	log.SetOutput(os.Stderr)
	path := os.Getenv(LogFileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		log.Printf("%s=%s: %v; logging to stderr", LogFileEnv, path, err)
		return func() {}
	}
	log.SetOutput(io.Writer(f))
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.Lmsgprefix)
	log.SetPrefix(fmt.Sprintf("netloom %s[%d]: ", name, os.Getpid()))
	return func() { f.Close() }
}

// LogError logs a failure that does not fail the command (a best-effort cleanup, an informative step),
// saying what was being done. Nothing is logged when err is nil.
func LogError(what string, err error) {
	if err != nil {
		log.Printf("%s: %v", what, err)
	}
}
