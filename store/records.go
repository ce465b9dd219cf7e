package store

import "time"

// Registry is a registry instance saved from the Settings tab.
type Registry struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Values map[string]string `json:"values"` // variables that are not secret
	// Secrets are the secret variables. They are never encoded to JSON, so
	// no read path that reaches the API can carry them by mistake. The
	// store keeps them encrypted (see secrets.go).
	Secrets map[string]string `json:"-"`
	// Unreadable names the secrets saved for this instance that the store's
	// key does not decrypt (a store copied without its key, or opened with
	// another): they are not in Secrets and must be entered again. Set by
	// reads; PutRegistry ignores it.
	Unreadable []string  `json:"-"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Notifier is a notifier saved from Settings → Notifications: its settings
// as notify.Parse takes them (key → value).
type Notifier struct {
	Name     string            `json:"name"`
	Settings map[string]string `json:"settings"` // settings that are not secret
	// Secrets are the secret settings: the url, which holds tokens and
	// passwords. They are never encoded to JSON, like Registry.Secrets, and
	// kept encrypted.
	Secrets map[string]string `json:"-"`
	// Unreadable names the saved secrets the store's key does not decrypt,
	// as Registry.Unreadable.
	Unreadable []string  `json:"-"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// RegistryTest is the outcome of the last connection test of an instance.
type RegistryTest struct {
	Kind     string    `json:"kind"`
	Name     string    `json:"name"`
	TestedAt time.Time `json:"testedAt"`
	Error    string    `json:"error"`            // empty: the test passed; else one sentence that says what to do
	Detail   string    `json:"detail,omitempty"` // the facts behind Error (never what the registry sent)
	// Settings is the UpdatedAt of the saved settings this test tested, for
	// a test run in the form before they were saved; zero otherwise.
	Settings time.Time `json:"settings,omitzero"`
}

// Location is where an image runs: a container on a Docker engine, a Swarm
// service, a Podman container, a workload's container in Kubernetes, a
// containerd container, or the config file's images: list (Watcher
// "config", no container).
type Location struct {
	Watcher     string `json:"watcher"`
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"containerId,omitempty"`
	// Kind is the kind of source that found it: docker, swarm, podman,
	// kubernetes, containerd or config.
	Kind string `json:"kind,omitempty"`
	// Place is where it runs within the watcher, human-readable and stable
	// between listings: a container name, stack/service, pod/container,
	// namespace/OwnerKind/owner/container.
	Place string `json:"place,omitempty"`
	// StaleSince is set while the watcher cannot be listed: the location is
	// as it was last listed, kept rather than dropped, and may be gone.
	StaleSince time.Time `json:"staleSince,omitzero"`
}

// String is where the image runs as people read it: "watcher · place"
// (k3s · media/Deployment/jellyfin/jellyfin), "config list" for the config
// file's images, and the container name for records stored before places.
func (l Location) String() string {
	if l.Kind == "config" || (l.Kind == "" && l.Watcher == "config" && l.Container == "") {
		return "config list"
	}
	place := l.Place
	if place == "" {
		place = l.Container
	}
	if place == "" {
		return l.Watcher
	}
	return l.Watcher + " · " + place
}

// WatcherState is how the last listings of a watcher went.
type WatcherState struct {
	Name string `json:"name"`
	Kind string `json:"kind,omitempty"`
	// Error is why the last listing failed; empty when it worked.
	Error string `json:"error,omitempty"`
	// FailingSince is the first failed listing since the last that worked
	// (zero when the last one worked): its images are stale since then.
	FailingSince time.Time `json:"failingSince,omitzero"`
	// LastListed is when a listing last worked; LastTried when one was
	// last tried.
	LastListed time.Time `json:"lastListed,omitzero"`
	LastTried  time.Time `json:"lastTried,omitzero"`
	// Images is how many images in use the last working listing found;
	// Problems are the containers or services it left out, and why (a bad
	// label, an image without a name).
	Images   int      `json:"images"`
	Problems []string `json:"problems,omitempty"`
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
	Update       string     `json:"update"`                // none|major|minor|patch|build|prerelease|digest|unknown
	Error        string     `json:"error"`                 // the last check's error: one sentence that says what to do
	ErrorDetail  string     `json:"errorDetail,omitempty"` // the facts behind it (never what the registry sent)
	FirstSeen    time.Time  `json:"firstSeen"`
	LastChecked  time.Time  `json:"lastChecked"`
	// Baseline is the digest accepted as current for an image whose digest
	// in use nobody can tell (one listed in the config without @sha256:):
	// the first digest seen behind its tag, until the admin accepts a newer
	// one (AcceptDigests). A different image behind the tag is a digest
	// update until then. Empty for containers (the engine's digest rules)
	// and pinned references.
	Baseline string `json:"baseline,omitempty"`
	// AcceptedAt is when the admin last accepted a digest as the baseline;
	// zero while the baseline is the first digest seen.
	AcceptedAt time.Time `json:"acceptedAt,omitzero"`
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
