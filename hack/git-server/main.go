// Command git-server serves the Git repositories under -root over smart
// HTTP, read-only, through git's own http-backend (net/http/cgi): what Flux's
// source-controller clones in `make gitops-demo`, with no Git server library
// in the project's go.mod. It prints its base URL on stdout and, with
// -url-file, writes it there once it listens.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

func main() {
	root := flag.String("root", ".", "folder whose repositories (<name>.git) are served as /<name>.git")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	urlFile := flag.String("url-file", "", "write the base URL here once listening")
	flag.Parse()
	abs, err := filepath.Abs(*root)
	if err != nil {
		log.Fatal(err)
	}
	git, err := exec.LookPath("git")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	fmt.Printf("serving %s/<name>.git from %s\n", base, abs)
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(base+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	// Without receive-pack: pushes go to the folder itself, not over HTTP.
	h := &cgi.Handler{
		Path: git,
		Args: []string{"http-backend"},
		Env:  []string{"GIT_PROJECT_ROOT=" + abs, "GIT_HTTP_EXPORT_ALL=1"},
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
