package kubernetes_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/tagwatch/tagwatch/internal/kubetest"
	"github.com/tagwatch/tagwatch/internal/regtest"
	"github.com/tagwatch/tagwatch/internal/storetest"
	"github.com/tagwatch/tagwatch/internal/watchtest"
	"github.com/tagwatch/tagwatch/store"
	"github.com/tagwatch/tagwatch/watcher"
	"github.com/tagwatch/tagwatch/watcher/kubernetes"
)

func TestRunningDigest(t *testing.T) {
	const d = "sha256:4c0fdaa8b6341bfdeca5f18f7837462c80cff90527ee35ef185571e1c327beac"
	tests := []struct{ imageID, want string }{
		{"docker-pullable://nginx@" + d, d},
		{"docker-pullable://registry.lan:5000/team/app@" + d, d},
		{"docker.io/library/nginx@" + d, d},
		{"127.0.0.1:5000/team/app@" + d, d},
		{"docker://" + d, ""}, // an image ID
		{d, ""},               // an image ID (containerd before pulling by digest, CRI-O)
		{"", ""},              // not pulled yet
		{"nginx@sha256:short", ""},
		{"nginx@md5:" + strings.Repeat("0", 32), ""},
	}
	for _, tt := range tests {
		if got := kubernetes.RunningDigest(tt.imageID); got != tt.want {
			t.Errorf("RunningDigest(%q) = %q, want %q", tt.imageID, got, tt.want)
		}
	}
}

// fixture is a namespace of a real apiserver holding the workloads a homelab
// runs, with images in a real registry.
type fixture struct {
	cluster *kubetest.Cluster
	reg     *regtest.Registry
	ns      string
	ctx     context.Context
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{cluster: kubetest.Start(t), reg: regtest.Start(t, regtest.Options{}), ctx: context.Background()}
	f.ns = fmt.Sprintf("tw-%d", time.Now().UnixNano()%1e9)
	f.cluster.Namespace(t, f.ns)
	return f
}

func (f *fixture) ref(repoTag string) string { return f.reg.Host + "/" + repoTag }

// repoDigest is an imageID as containerd reports it for a pulled image.
func (f *fixture) repoDigest(repo, digest string) string {
	return f.reg.Host + "/" + repo + "@" + digest
}

func owned(kind, name string, uid types.UID) []metav1.OwnerReference {
	yes := true
	api := map[string]string{"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
		"DaemonSet": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}[kind]
	return []metav1.OwnerReference{{APIVersion: api, Kind: kind, Name: name, UID: uid, Controller: &yes}}
}

func podSpec(containers ...corev1.Container) corev1.PodSpec {
	return corev1.PodSpec{Containers: containers, RestartPolicy: corev1.RestartPolicyAlways}
}

func template(labels map[string]string, spec corev1.PodSpec) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
}

// deployment creates a Deployment and its ReplicaSet as the controller
// would, and returns the ReplicaSet's UID for its pods.
func (f *fixture) deployment(t *testing.T, name string, annotations map[string]string, spec corev1.PodSpec) types.UID {
	t.Helper()
	cs := f.cluster.Client(t)
	labels := map[string]string{"app": name}
	d, err := cs.AppsV1().Deployments(f.ns).Create(f.ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template(labels, spec)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := cs.AppsV1().ReplicaSets(f.ns).Create(f.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-5d8f9c", OwnerReferences: owned("Deployment", name, d.UID)},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template(labels, spec)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return rs.UID
}

func (f *fixture) pod(t *testing.T, name string, owner []metav1.OwnerReference, annotations map[string]string, spec corev1.PodSpec,
	phase corev1.PodPhase, imageIDs map[string]string) {
	t.Helper()
	f.cluster.Pod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: f.ns, OwnerReferences: owner, Annotations: annotations},
		Spec:       spec,
	}, phase, imageIDs)
}

func byPlace(found []watcher.Found) map[string]watcher.Found {
	m := map[string]watcher.Found{}
	for _, f := range found {
		m[f.Location.Place] = f
	}
	return m
}

// TestSourceAgainstAPIServer lists a real apiserver's pods, as a kubelet
// reported them, through a kubeconfig context whose user holds only the
// shipped ClusterRole, then runs the daemon over them: digests in use,
// options from annotations (the owner's winning), replicas as one location,
// finished pods, updates and digest changes after pushes to a real
// registry, and a deleted workload dropped.
func TestSourceAgainstAPIServer(t *testing.T) {
	f := newFixture(t)
	cs := f.cluster.Client(t)
	bindShippedRole(t, f.cluster, "tagwatch-reader")

	appV1 := f.reg.Push(t, "media/jellyfin:10.9.1", regtest.Image(t, f.ns+"jellyfin-10.9.1")).String()
	f.reg.Push(t, "media/jellyfin:10.10.0-rc1", regtest.Image(t, f.ns+"jellyfin-rc"))
	dbImg := regtest.Image(t, f.ns+"db-1")
	dbV1 := f.reg.Push(t, "home/db:latest", dbImg).String()
	toolV1 := f.reg.Push(t, "home/tool:1.0.0", regtest.Image(t, f.ns+"tool-1")).String()
	dbConfig, err := dbImg.ConfigName()
	if err != nil {
		t.Fatal(err)
	}

	// A Deployment of two replicas with an init container; its own
	// annotations set the options, and beat a pod annotation.
	jelly := podSpec(corev1.Container{Name: "jellyfin", Image: f.ref("media/jellyfin:10.9.1")})
	jelly.InitContainers = []corev1.Container{{Name: "migrate", Image: f.ref("home/tool:1.0.0")}}
	rsUID := f.deployment(t, "jellyfin", map[string]string{
		watcher.LabelDisplayName: "Jellyfin",
		watcher.LabelExclude:     "rc",
	}, jelly)
	ids := map[string]string{"jellyfin": f.repoDigest("media/jellyfin", appV1), "migrate": f.repoDigest("home/tool", toolV1)}
	for _, p := range []string{"jellyfin-5d8f9c-abcde", "jellyfin-5d8f9c-fghij"} {
		f.pod(t, p, owned("ReplicaSet", "jellyfin-5d8f9c", rsUID),
			map[string]string{watcher.LabelDisplayName: "from the pod"}, jelly, corev1.PodRunning, ids)
	}

	// A StatefulSet running a floating tag.
	db := podSpec(corev1.Container{Name: "db", Image: f.ref("home/db:latest")})
	sts, err := cs.AppsV1().StatefulSets(f.ns).Create(f.ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: template(map[string]string{"app": "db"}, db)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.pod(t, "db-0", owned("StatefulSet", "db", sts.UID), nil, db, corev1.PodRunning, map[string]string{"db": f.repoDigest("home/db", dbV1)})

	// A CronJob's finished run is still watched; a one-off Job's is not.
	job := podSpec(corev1.Container{Name: "backup", Image: f.ref("home/tool:1.0.0")})
	job.RestartPolicy = corev1.RestartPolicyNever
	cj, err := cs.BatchV1().CronJobs(f.ns).Create(f.ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "backup"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: job}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []struct {
		name  string
		owner []metav1.OwnerReference
	}{
		{"backup-29000000", owned("CronJob", "backup", cj.UID)},
		{"oneoff", nil},
		// A deleted CronJob's run, left until the garbage collector comes
		// (which does not run here).
		{"removed-29000000", owned("CronJob", "removed", "0d4b7f3e-0000-4000-8000-000000000000")},
	} {
		labels := map[string]string{"job": j.name}
		jb, err := cs.BatchV1().Jobs(f.ns).Create(f.ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: j.name, OwnerReferences: j.owner},
			Spec: batchv1.JobSpec{ManualSelector: ptr(true), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: template(labels, job)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f.pod(t, j.name+"-x7k2p", owned("Job", j.name, jb.UID), nil, job, corev1.PodSucceeded,
			map[string]string{"backup": f.repoDigest("home/tool", toolV1)})
	}

	// A bare pod whose runtime reports an image ID (no repository digest),
	// one turned off, and one with a misspelt option.
	f.pod(t, "debug", nil, nil, podSpec(corev1.Container{Name: "shell", Image: f.ref("home/db:latest")}),
		corev1.PodRunning, map[string]string{"shell": dbConfig.String()})
	f.pod(t, "quiet", nil, map[string]string{watcher.LabelEnable: "false"},
		podSpec(corev1.Container{Name: "q", Image: f.ref("home/db:latest")}), corev1.PodRunning, nil)
	f.pod(t, "typo", nil, map[string]string{"tagwatch.tag.inclde": "^1"},
		podSpec(corev1.Container{Name: "t", Image: f.ref("home/db:latest")}), corev1.PodRunning, nil)

	src := &kubernetes.Source{
		Watcher:        "k3s",
		Kubeconfig:     f.cluster.Kubeconfig(t, kubetest.AdminUser, "tagwatch-reader"),
		Context:        "tagwatch-reader", // not the current context: the admin's
		Namespaces:     []string{f.ns},
		WatchByDefault: true,
		PageSize:       2, // several pages
	}
	found, err := src.List(f.ctx)
	var bad watcher.ContainerErrors
	if !errors.As(err, &bad) || len(bad) != 1 || bad[0].Container != f.ns+"/Pod/typo/t" ||
		!strings.Contains(bad[0].Error(), "unknown label tagwatch.tag.inclde") {
		t.Fatalf("List error = %v; want the typo pod named", err)
	}
	got := byPlace(found)
	want := map[string]string{ // place → digest in use
		f.ns + "/Deployment/jellyfin/jellyfin": appV1,
		f.ns + "/Deployment/jellyfin/migrate":  toolV1,
		f.ns + "/StatefulSet/db/db":            dbV1,
		f.ns + "/CronJob/backup/backup":        toolV1,
		f.ns + "/Pod/debug/shell":              "", // an image ID is no digest a registry knows
	}
	if len(found) != len(want) {
		t.Errorf("found %d images, want %d (replicas once, no one-off job or removed CronJob's run, no turned-off pod):", len(found), len(want))
		for _, fd := range found {
			t.Logf("  %s %s %s", fd.Location.Place, fd.Target.Image, fd.Target.Digest)
		}
	}
	for place, digest := range want {
		fd, ok := got[place]
		if !ok {
			t.Errorf("%s not found", place)
			continue
		}
		if fd.Target.Digest != digest || fd.Target.Pinned {
			t.Errorf("%s: digest %q (pinned %v), want %q", place, fd.Target.Digest, fd.Target.Pinned, digest)
		}
		if l := fd.Location; l.Watcher != "k3s" || l.Kind != "kubernetes" {
			t.Errorf("%s: location %+v", place, l)
		}
	}
	if j := got[f.ns+"/Deployment/jellyfin/jellyfin"]; j.DisplayName != "Jellyfin" || j.Target.Options.Exclude == nil {
		t.Errorf("jellyfin's options (from the Deployment's annotations): display %q, options %+v", j.DisplayName, j.Target.Options)
	}

	// The daemon over it, into a real bbolt file.
	st := storetest.Open(t)
	d := watchtest.Daemon(t, st, src)
	rep := d.RunCycle(f.ctx, d.Sources)
	if rep.Errors != 0 || !strings.Contains(rep.Sources["k3s"], "typo") {
		t.Fatalf("first cycle: %+v", rep)
	}
	recs := records(t, st)
	jf := recs.byRef[f.ref("media/jellyfin:10.9.1")]
	if jf.Update != "none" || jf.DisplayName != "Jellyfin" || len(jf.Where) != 1 || jf.Digest != appV1 {
		t.Errorf("jellyfin after the first cycle (the rc excluded): %+v", jf)
	}
	if tool := recs.byRef[f.ref("home/tool:1.0.0")]; len(tool.Where) != 2 {
		t.Errorf("tool runs in two workloads, one record: %+v", tool.Where)
	}

	// A release and a rebuilt floating tag.
	appV2 := f.reg.Push(t, "media/jellyfin:10.10.0", regtest.Image(t, f.ns+"jellyfin-10.10.0")).String()
	dbV2 := f.reg.Push(t, "home/db:latest", regtest.Image(t, f.ns+"db-2")).String()
	rep = d.RunCycle(f.ctx, d.Sources)
	recs = records(t, st)
	if jf := recs.byRef[f.ref("media/jellyfin:10.9.1")]; jf.Update != "minor" || jf.LatestTag != "10.10.0" || jf.LatestDigest != appV2 {
		t.Errorf("jellyfin after a release: %+v", jf)
	}
	var dbRec store.Image
	for _, r := range recs.all {
		if r.Reference == f.ref("home/db:latest") && r.Digest == dbV1 {
			dbRec = r
		}
	}
	if dbRec.Update != "digest" || dbRec.LatestDigest != dbV2 || len(dbRec.Where) != 1 || dbRec.Where[0].Place != f.ns+"/StatefulSet/db/db" {
		t.Errorf("db after a rebuild of latest: %+v", dbRec)
	}
	if len(rep.Updates) < 2 {
		t.Errorf("updates announced: %+v", rep.Updates)
	}

	// The StatefulSet is deleted: its image is no longer in use.
	if err := cs.CoreV1().Pods(f.ns).Delete(f.ctx, "db-0", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	if err := cs.AppsV1().StatefulSets(f.ns).Delete(f.ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, cs.CoreV1().Pods(f.ns).Get, "db-0")
	d.RunCycle(f.ctx, d.Sources)
	for _, r := range records(t, st).all {
		for _, l := range r.Where {
			if strings.Contains(l.Place, "StatefulSet/db") {
				t.Errorf("the deleted StatefulSet is still watched: %+v", r)
			}
		}
	}
}

// TestMissingPermission: a user whose role lacks one verb of the shipped
// ClusterRole gets an error that names what to grant.
func TestMissingPermission(t *testing.T) {
	f := newFixture(t)
	cs := f.cluster.Client(t)
	role := shippedClusterRole(t)
	role.Name = "tagwatch-no-replicasets-" + f.ns
	for i, r := range role.Rules {
		if len(r.APIGroups) == 1 && r.APIGroups[0] == "apps" {
			role.Rules[i].Resources = []string{"deployments", "statefulsets", "daemonsets"}
		}
	}
	bind(t, cs, role, "tagwatch-nobody")
	labels := map[string]string{"app": "web"}
	spec := podSpec(corev1.Container{Name: "web", Image: f.ref("media/web:1.0.0")})
	rs, err := cs.AppsV1().ReplicaSets(f.ns).Create(f.ctx, &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1"},
		Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: template(labels, spec)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.pod(t, "web-1-abcde", owned("ReplicaSet", "web-1", rs.UID), nil, spec, corev1.PodRunning, nil)

	src := &kubernetes.Source{Watcher: "k3s", Config: f.cluster.Config("tagwatch-nobody"), Namespaces: []string{f.ns}, WatchByDefault: true}
	_, err = src.List(f.ctx)
	for _, want := range []string{"watcher k3s (" + f.cluster.URL + ")", "reading ReplicaSet " + f.ns + "/web-1", `cannot list resource "replicasets"`, "contrib/kubernetes/rbac.yaml"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v; want it to say %q", err, want)
		}
	}

	// Without list on pods, nothing at all: the error says so.
	src = &kubernetes.Source{Watcher: "k3s", Config: f.cluster.Config("tagwatch-ns-reader"), WatchByDefault: true}
	_, err = src.List(f.ctx)
	if err == nil || !strings.Contains(err.Error(), "listing pods in all namespaces") || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("error = %v", err)
	}
}

// TestUnreachable: a cluster that refuses connections, and one that accepts
// them and never answers, are reported within the source's deadline while
// another source's images go on being checked; the unreachable one's last
// known images stay.
func TestUnreachable(t *testing.T) {
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return "https://" + l.Addr().String()
	}()
	hang := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	}))
	defer hang.Close()
	for _, tt := range []struct{ name, host, want string }{
		{"refused", closed, "connection refused"},
		{"silent", hang.URL, "deadline exceeded"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &kubernetes.Source{Watcher: "k3s", Config: &rest.Config{Host: tt.host, TLSClientConfig: rest.TLSClientConfig{Insecure: true}},
				Timeout: 2 * time.Second}
			start := time.Now()
			_, err := src.List(context.Background())
			if err == nil || !strings.Contains(err.Error(), "watcher k3s ("+tt.host+")") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want the watcher, its apiserver and %q", err, tt.want)
			}
			if took := time.Since(start); took > 30*time.Second {
				t.Errorf("List took %s with a 2s timeout", took)
			}
		})
	}

	// In the daemon: the other source goes on, the cluster's images stay.
	watchtest.CheckUnreachable(t, &kubernetes.Source{Watcher: "k3s", Config: &rest.Config{Host: closed}, Timeout: 2 * time.Second},
		store.Location{Watcher: "k3s", Kind: "kubernetes", Place: "media/Deployment/kept/kept"}, "connection refused")
}

func records(t *testing.T, st *store.Store) recordMap {
	t.Helper()
	imgs, err := st.Images()
	if err != nil {
		t.Fatal(err)
	}
	m := recordMap{all: imgs, byKey: map[string]store.Image{}, byRef: map[string]store.Image{}}
	for _, img := range imgs {
		m.byKey[img.Key] = img
		m.byRef[img.Reference] = img
	}
	return m
}

// recordMap finds records by reference (m[ref]) or key.
type recordMap struct {
	all   []store.Image
	byKey map[string]store.Image
	byRef map[string]store.Image
}

func waitGone[T any](t *testing.T, get func(context.Context, string, metav1.GetOptions) (T, error), name string) {
	t.Helper()
	for range 100 {
		if _, err := get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not deleted", name)
}

func ptr[T any](v T) *T { return &v }

// bindShippedRole binds contrib/kubernetes' ClusterRole to a token user.
func bindShippedRole(t *testing.T, c *kubetest.Cluster, user string) {
	t.Helper()
	role := shippedClusterRole(t)
	role.Name += "-" + user
	bind(t, c.Client(t), role, user)
}

func bind(t *testing.T, cs clientset.Interface, role *rbacv1.ClusterRole, user string) {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
		_ = cs.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
}

// TestClientConfigErrors: a kubeconfig that cannot be used, a context it
// lacks, or a context with no kubeconfig name the watcher and what to fix.
func TestClientConfigErrors(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // not in a cluster, even when the tests are
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:1}\n"+
		"users:\n- name: u\n  user: {token: x}\ncontexts:\n- name: home\n  context: {cluster: c, user: u}\ncurrent-context: home\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		src  *kubernetes.Source
		want string
	}{
		{"missing file", &kubernetes.Source{Kubeconfig: "/nonexistent/kubeconfig"}, "watcher k3s: kubeconfig /nonexistent/kubeconfig:"},
		{"unknown context", &kubernetes.Source{Kubeconfig: kc, Context: "work"}, `context "work" does not exist`},
		{"context without kubeconfig", &kubernetes.Source{Context: "home"}, "context needs a kubeconfig"},
		{"not in a cluster", &kubernetes.Source{}, "no kubeconfig set and not in a cluster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.src.Watcher = "k3s"
			_, err := tt.src.List(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v; want %q", err, tt.want)
			}
		})
	}
}
