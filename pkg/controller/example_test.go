package controller_test

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	kubeinformers "k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned"
	"github.com/mumoshu/aws-secret-controller/pkg/generated/clientset/versioned/fake"
	informers "github.com/mumoshu/aws-secret-controller/pkg/generated/informers/externalversions"
)

// staticSecretsManager answers every GetSecretValue with the same JSON.
type staticSecretsManager string

func (s staticSecretsManager) GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(string(s))}, nil
}

// Example wires the controller into a program of its own, with its own informer factories. A
// real program passes real clientsets and awssm.New's client; this one uses fakes so it runs
// anywhere.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var kubeClient kubernetes.Interface = k8sfake.NewClientset()
	var client versioned.Interface = fake.NewClientset(&v1alpha1.AWSSecret{
		// Stored objects have a UID; the fake's field manager refuses status updates without one.
		ObjectMeta: metav1.ObjectMeta{Name: "example", Namespace: "default", UID: "c0ffee"},
		Spec: v1alpha1.AWSSecretSpec{StringDataFrom: &v1alpha1.DataSource{
			SecretsManagerSecretRef: v1alpha1.SecretsManagerSecretRef{
				SecretID:  "prod/mysecret",
				VersionID: "c43e66cb-d0fe-44c5-9b7e-d450441a04be",
			},
		}},
	})
	var secretsManager awssm.API = staticSecretsManager(`{"foo":"bar"}`)

	// The Secret informer only needs the controller's own Secrets.
	kubeFactory := kubeinformers.NewSharedInformerFactoryWithOptions(kubeClient, 10*time.Hour,
		kubeinformers.WithTweakListOptions(controller.ManagedSecretsOnly))
	// The controller's own Secrets, without their data: no secret value stays in memory.
	kubeFactory.InformerFor(&corev1.Secret{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return controller.NewSecretInformer(c, "", resync)
	})
	factory := informers.NewSharedInformerFactory(client, 10*time.Hour)
	// AWSSecrets trimmed as they arrive: no initial list held whole with its managedFields.
	factory.InformerFor(&v1alpha1.AWSSecret{}, func(c versioned.Interface, resync time.Duration) cache.SharedIndexInformer {
		return controller.NewAWSSecretInformer(c, "", resync)
	})

	c, err := controller.NewController(ctx, controller.Options{
		KubeClient:        kubeClient,
		AWSSecretClient:   client,
		AWSSecretInformer: factory.Mumoshu().V1alpha1().AWSSecrets(),
		SecretInformer:    kubeFactory.Core().V1().Secrets(),
		Versions:          awssm.NewCache(secretsManager, awssm.CacheOptions{}),
	})
	if err != nil {
		panic(err)
	}
	// Start the factories after NewController has registered its handlers.
	kubeFactory.Start(ctx.Done())
	factory.Start(ctx.Done())
	done := make(chan error)
	go func() { done <- c.Run(ctx, 2) }()

	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		secret, err := kubeClient.CoreV1().Secrets("default").Get(ctx, "example", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		fmt.Printf("foo=%s\n", secret.Data["foo"])
		return true, nil
	})
	if err != nil {
		panic(err)
	}
	cancel()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output: foo=bar
}
