// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 because no
// prebuilt binary can be downloaded on the machines this project is developed on.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
