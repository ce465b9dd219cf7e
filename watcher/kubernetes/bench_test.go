package kubernetes_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tagwatch/tagwatch/internal/kubetest"
	"github.com/tagwatch/tagwatch/watcher/kubernetes"
)

// BenchmarkList lists a namespace of 30 Deployments of 10 replicas each
// (300 pods, each owner read once per List) on the real apiserver, and
// reports pods per second and requests per List:
//
//	go test -run '^$' -bench List ./watcher/kubernetes/
func BenchmarkList(b *testing.B) {
	c := kubetest.Start(b)
	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano()%1e9)
	c.Namespace(b, ns)
	cs := c.Client(b)
	ctx := context.Background()
	const deployments, replicas = 30, 10
	for d := range deployments {
		name := fmt.Sprintf("app%02d", d)
		labels := map[string]string{"app": name}
		spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: fmt.Sprintf("registry.lan/team/%s:1.0.%d", name, d)}}}
		tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}
		dep, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"tagwatch.tag.policy": "minor"}},
			Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-1", OwnerReferences: owned("Deployment", name, dep.UID)},
			Spec:       appsv1.ReplicaSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: tmpl},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for r := range replicas {
			c.Pod(b, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-1-%d", name, r), Namespace: ns,
				OwnerReferences: owned("ReplicaSet", rs.Name, rs.UID)}, Spec: spec}, corev1.PodRunning,
				map[string]string{"app": "registry.lan/team/" + name + "@sha256:" + fmt.Sprintf("%064d", d)})
		}
	}
	src := &kubernetes.Source{Watcher: "bench", Config: c.Config(kubetest.AdminUser), Namespaces: []string{ns}, WatchByDefault: true}
	b.ResetTimer()
	for b.Loop() {
		found, err := src.List(ctx)
		if err != nil || len(found) != deployments {
			b.Fatalf("List: %v, %d found", err, len(found))
		}
	}
	b.ReportMetric(float64(deployments*replicas*b.N)/b.Elapsed().Seconds(), "pods/s")
}
