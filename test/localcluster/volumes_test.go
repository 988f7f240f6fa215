package localcluster

import "testing"

func TestProcessKubeletTranslatesMountPathsOnly(t *testing.T) {
	mounts := []mount{ // longest first, as prepareVolumes sorts them
		{path: "/var/lib/data/cache", local: "/root/c"},
		{path: "/var/lib/data", local: "/root/d"},
		{path: "/tmp", local: "/tmp/pods/1/tmp"},
	}
	for in, want := range map[string]string{
		"/var/lib/data":                      "/root/d",
		"/var/lib/data/models/m.gguf":        "/root/d/models/m.gguf",
		"/var/lib/data/cache/x":              "/root/c/x",
		"--dir=/var/lib/data":                "--dir=/root/d",
		`{"cacheDir":"/var/lib/data/cache"}`: `{"cacheDir":"/root/c"}`,
		"/var/lib/database":                  "/var/lib/database",
		"/srv/var/lib/data":                  "/srv/var/lib/data",
		"a:/tmp:/var/lib/data/x":             "a:/tmp/pods/1/tmp:/root/d/x",
		"file:///var/lib/data/m":             "file:///root/d/m",
		"http://host/var/lib/data":           "http://host/var/lib/data",
		"/tmp/x /tmpfs":                      "/tmp/pods/1/tmp/x /tmpfs",
		"no paths":                           "no paths",
		"":                                   "",
	} {
		if got := translate(in, mounts); got != want {
			t.Errorf("translate(%q) = %q, want %q", in, got, want)
		}
	}
}
