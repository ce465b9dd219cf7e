package watcher

// Settings are a workload's tagwatch.* options, read from its labels (a
// container, a containerd container) or annotations (a Kubernetes object).
type Settings struct {
	Options      TagOptions
	DisplayName  string // tagwatch.display.name
	LinkTemplate string // tagwatch.link.template
}

// ReadLabels is the label parser for sources outside this package
// (watcher/kubernetes, watcher/containerd): whether a workload is watched
// (tagwatch.enable, else byDefault) and, if so, its options. The error names
// every bad or unknown tagwatch.* key at once, as for Docker containers.
func ReadLabels(labels map[string]string, byDefault bool) (watched bool, s Settings, err error) {
	on, err := labelEnabled(labels, byDefault)
	if err != nil || !on {
		return false, Settings{}, err
	}
	ls, err := parseLabels(labels)
	if err != nil {
		return false, Settings{}, err
	}
	return true, Settings(ls), nil
}
