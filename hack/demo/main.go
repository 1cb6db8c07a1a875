// Command demo runs aws-secret-controller end to end on a local stack: a real kube-apiserver and
// etcd, the kumo Secrets Manager emulator, the controller binary and kubectl, all from bin/
// (`make demo` builds them). It shows the seed example syncing and a versionId bump rolling
// out, then keeps everything running for you to explore until Ctrl-C.
//
// With --cluster (`make demo-cluster`) the stack also runs a node (containerd, kubelet,
// kube-controller-manager, kube-scheduler; Linux and root only), and the controller is installed
// as users install it: the image `make image` builds, applied with the shipped manifests
// (kubectl apply -k), as two Pods with leader election. The story is the same, and ends with
// the garbage collector deleting the Secret of a deleted AWSSecret.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/tenancy"
	"github.com/mumoshu/aws-secret-controller/pkg/testenv"
)

const seedVersionID = "c43e66cb-d0fe-44c5-9b7e-d450441a04be"

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", ".", "The repository: manifests/ and bin/ are found there.")
	flag.BoolVar(&o.once, "once", false, "Exit after the rollout instead of waiting for Ctrl-C.")
	flag.BoolVar(&o.cluster, "cluster", false, "Install the controller's image with the shipped manifests on a local node (root, Linux; `make demo-cluster`) instead of running the binary.")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

type options struct {
	repo    string
	once    bool
	cluster bool
}

func run(ctx context.Context, o options, out io.Writer) (err error) {
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	bin := filepath.Join(repo, "bin")
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }

	opts := testenv.Options{BinDir: bin}
	var image string
	if o.cluster {
		archive := filepath.Join(bin, "aws-secret-controller-image.tar")
		if image, err = testenv.ImageName(archive); err != nil {
			return fmt.Errorf("%w (run `make image`)", err)
		}
		opts.Node, opts.NodeImages, opts.Timeout = true, []string{archive}, 3*time.Minute
		step("Starting etcd, kube-apiserver, the kumo Secrets Manager emulator and a node (containerd, kubelet,\n    kube-controller-manager, kube-scheduler); one node runs per machine: this waits while another does")
	} else {
		opts.CRDs = []string{filepath.Join(repo, "manifests", "crd", "mumoshu.github.io_awssecrets.yaml")}
		step("Starting etcd, kube-apiserver and the kumo Secrets Manager emulator")
	}
	env, err := testenv.New(ctx, opts)
	if err != nil {
		if o.cluster && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("starting the stack with a node (waiting, perhaps, for another node on this machine to stop): %w", err)
		}
		if o.cluster {
			return fmt.Errorf("starting the stack with a node (run `make node-tools pause-image image`, as root): %w", err)
		}
		return err
	}
	defer func() {
		step("Stopping everything")
		stopErr := env.Stop()
		if o.cluster {
			if left := env.NodeLeftovers(); len(left) > 0 {
				stopErr = errors.Join(stopErr, fmt.Errorf("the node left behind:\n%s", strings.Join(left, "\n")))
			}
		}
		if stopErr != nil && err == nil {
			err = fmt.Errorf("stopping: %w", stopErr)
		}
	}()
	kubectl := func(stdin string, args ...string) (string, error) { return env.Kubectl(ctx, stdin, args...) }
	sm := env.SecretsManager()
	kube := kubernetes.NewForConfigOrDie(env.Config)
	client := versioned.NewForConfigOrDie(env.Config)

	step(`Creating the secret prod/mysecret = {"foo":"bar"} in the emulator`)
	created, err := sm.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String("prod/mysecret"), SecretString: aws.String(`{"foo":"bar"}`),
	})
	if err != nil {
		return err
	}
	v1 := aws.ToString(created.VersionId)
	fmt.Fprintf(out, "versionId: %s\n", v1)

	step("Allowing namespace default to read prod/* (the shipped install runs --namespace-policy=allow-list)")
	if _, err := kubectl("", "annotate", "--overwrite", "namespace", "default", tenancy.AnnotationAllowedSecretIDs+"=prod/*"); err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kubectl annotate namespace default %s=prod/*\n", tenancy.AnnotationAllowedSecretIDs)

	// How to see the controller's log, for the Explore step.
	var logs string
	if o.cluster {
		if err := install(ctx, out, step, env, repo, image); err != nil {
			return err
		}
		logs = fmt.Sprintf("%s logs -n %s -l %s --prefix", filepath.Join(bin, "kubectl"), controllerNamespace, testenv.ControllerSelector)
	} else {
		step("Starting the controller (--namespace-policy=allow-list)")
		ctrl, err := env.StartController(ctx, testenv.ControllerOptions{Args: []string{"--namespace-policy=allow-list"}})
		if err != nil {
			return err
		}
		defer func() { _, _ = ctrl.Stop(10 * time.Second) }()
		fmt.Fprintf(out, "log: %s\n", ctrl.LogPath)
		logs = "controller log: " + ctrl.LogPath
	}

	step("Applying the seed example (manifests/example/awssecret.yaml) with that versionId")
	example, err := os.ReadFile(filepath.Join(repo, "manifests", "example", "awssecret.yaml"))
	if err != nil {
		return err
	}
	if _, err := kubectl(strings.ReplaceAll(string(example), seedVersionID, v1), "apply", "-n", "default", "-f", "-"); err != nil {
		return err
	}
	if err := show(ctx, out, kube, client, kubectl, v1); err != nil {
		return err
	}

	step(`Putting a new version {"foo":"baz"} and bumping versionId, as a commit would`)
	put, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String("prod/mysecret"), SecretString: aws.String(`{"foo":"baz"}`),
	})
	if err != nil {
		return err
	}
	v2 := aws.ToString(put.VersionId)
	patch := fmt.Sprintf(`{"spec":{"stringDataFrom":{"secretsManagerSecretRef":{"versionId":%q}}}}`, v2)
	if _, err := kubectl("", "patch", "awssecret", "example", "-n", "default", "--type", "merge", "-p", patch); err != nil {
		return err
	}
	if err := show(ctx, out, kube, client, kubectl, v2); err != nil {
		return err
	}

	if o.cluster {
		if err := collectGarbage(ctx, out, step, kube, kubectl); err != nil {
			return err
		}
	}

	step("Explore")
	fmt.Fprintf(out, "export KUBECONFIG=%s\n", env.Kubeconfig)
	fmt.Fprintf(out, "%s get awssecrets -A\n", filepath.Join(bin, "kubectl"))
	if o.cluster {
		fmt.Fprintf(out, "%s get pods -n %s -o wide\n", filepath.Join(bin, "kubectl"), controllerNamespace)
		fmt.Fprintf(out, "sed s/%s/%s/ %s | %s apply -f -   # the example again\n",
			seedVersionID, v2, filepath.Join(repo, "manifests", "example", "awssecret.yaml"), filepath.Join(bin, "kubectl"))
	}
	fmt.Fprintf(out, "export AWS_ENDPOINT_URL_SECRETS_MANAGER=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test\n", env.SecretsManagerEndpoint, testenv.Region)
	fmt.Fprintf(out, "aws secretsmanager list-secrets   # or any AWS SDK\n")
	fmt.Fprintln(out, logs)
	if o.once {
		return nil
	}
	fmt.Fprintln(out, "\nRunning until Ctrl-C.")
	<-ctx.Done()
	return nil
}

// show waits until the example holds versionID, then prints the AWSSecret table and the
// decoded Secret.
func show(ctx context.Context, out io.Writer, kube kubernetes.Interface, client versioned.Interface,
	kubectl func(string, ...string) (string, error), versionID string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		a, err := client.MumoshuV1alpha1().AWSSecrets("default").Get(ctx, "example", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		ready := meta.IsStatusConditionTrue(a.Status.Conditions, v1alpha1.ConditionReady)
		return ready && a.Status.StringDataFrom != nil && a.Status.StringDataFrom.VersionID == versionID, nil
	})
	if err != nil {
		return fmt.Errorf("the example did not sync to %s: %w", versionID, err)
	}
	table, err := kubectl("", "get", "awssecrets", "-n", "default")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kubectl get awssecrets\n%s", table)
	secret, err := kube.CoreV1().Secrets("default").Get(ctx, "example", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "$ kubectl get secret example   # data, decoded\n")
	keys := make([]string, 0, len(secret.Data))
	for k := range secret.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(out, "%s: %s\n", k, secret.Data[k])
	}
	return nil
}
