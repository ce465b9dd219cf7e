package store

import "time"

// Registry is a registry instance saved from the Settings tab.
type Registry struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Values map[string]string `json:"values"` // variables that are not secret
	// Secrets are the secret variables. They are never encoded to JSON, so
	// no read path that reaches the API can carry them by mistake.
	Secrets   map[string]string `json:"-"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// Notifier is a notifier saved from Settings → Notifications: its settings
// as notify.Parse takes them (key → value).
type Notifier struct {
	Name     string            `json:"name"`
	Settings map[string]string `json:"settings"` // settings that are not secret
	// Secrets are the secret settings: the url, which holds tokens and
	// passwords. They are never encoded to JSON, like Registry.Secrets.
	Secrets   map[string]string `json:"-"`
	UpdatedAt time.Time         `json:"updatedAt"`
}

// RegistryTest is the outcome of the last connection test of an instance.
type RegistryTest struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	TestedAt time.Time `json:"testedAt"`
	Error    string    `json:"error"` // empty: the test passed
}

// Location is where an image runs: a container on a Docker engine, a
// workload's container in Kubernetes, a containerd container, or the config
// file's images: list (Watcher "config", no container).
type Location struct {
	Watcher     string `json:"watcher"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	// Kind is the kind of source that found it: docker, swarm, podman,
	// kubernetes, containerd, config.
	Kind string `json:"kind,omitempty"`
	// Place is where it runs, readable and stable from one cycle to the
	// next: a container's name; for Kubernetes
	// namespace/OwnerKind/ownerName/container; for containerd
	// namespace/container.
	Place string `json:"place,omitempty"`
}

// Image is a watched image and the last result of its check. Key is the
// normalized reference plus the platform: one record per thing checked.
type Image struct {
	Key          string     `json:"key"`
	Image        string     `json:"image"`     // as written
	Reference    string     `json:"reference"` // normalized
	Registry     string     `json:"registry"`  // kind.name
	Platform     string     `json:"platform"`
	DisplayName  string     `json:"displayName,omitempty"`
	Link         string     `json:"link,omitempty"`
	Where        []Location `json:"where"`
	Tag          string     `json:"tag"`
	Digest       string     `json:"digest"`
	LatestTag    string     `json:"latestTag"`
	LatestDigest string     `json:"latestDigest"`
	Update       string     `json:"update"` // none|major|minor|patch|build|prerelease|digest|unknown
	Error        string     `json:"error"`
	FirstSeen    time.Time  `json:"firstSeen"`
	LastChecked  time.Time  `json:"lastChecked"`
}

// HistoryEntry records one detected update, once.
type HistoryEntry struct {
	Seq        uint64    `json:"seq"` // assigned by the store, increasing
	At         time.Time `json:"at"`
	Key        string    `json:"key"`
	Reference  string    `json:"reference"`
	Registry   string    `json:"registry"`
	Update     string    `json:"update"`
	FromTag    string    `json:"fromTag"`
	ToTag      string    `json:"toTag"`
	FromDigest string    `json:"fromDigest"`
	ToDigest   string    `json:"toDigest"`
}
