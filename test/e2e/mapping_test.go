package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mumoshu/aws-secret-controller/pkg/apis/mumoshu/v1alpha1"
	"github.com/mumoshu/aws-secret-controller/pkg/controller"
)

// These tests drive spec.data entries and spec.template through the real binary, API server
// and emulator: the recipes users write (a token, a TLS pair, a DATABASE_URL, a binary blob),
// what each costs in AWS calls, how failures are reported without values, and what the CRD
// refuses.

// TestMappingRecipes builds one AWSSecret per recipe, each costing exactly one GetSecretValue
// call, and checks the Secret each produces, the versions its status lists and the controller's
// marks on it: two digests, not one annotation per entry.
func TestMappingRecipes(t *testing.T) {
	ns := newNamespace(t, "mapping-recipes")
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	// costs runs a recipe and fails unless it cost exactly one GetSecretValue call, by the
	// controller's count, by the emulator's, and by the emulator's reads of secretID.
	costs := func(t *testing.T, secretID string, recipe func()) {
		t.Helper()
		metricsBefore, emulatorBefore, readsBefore := p.awsCalls(t), emulatorCalls(t), readsOf(t, secretID)
		recipe()
		if got := p.awsCalls(t) - metricsBefore; got != 1 {
			t.Errorf("GetSecretValue calls by /metrics = %d, want 1", got)
		}
		if got := emulatorCalls(t) - emulatorBefore; got != 1 {
			t.Errorf("GetSecretValue calls by the emulator's log = %d, want 1", got)
		}
		if got := readsOf(t, secretID) - readsBefore; got != 1 {
			t.Errorf("emulator reads of %s = %d, want 1", secretID, got)
		}
	}

	t.Run("plaintext token", func(t *testing.T) {
		const id = "e2e/mapping-recipes/token"
		token := newValue("token")
		v := createSecret(t, id, token)
		var secret *corev1.Secret
		costs(t, id, func() {
			mappingCreate(t, ns, "token", v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{
				{Key: "token", SecretsManagerSecretRef: mappingRef(id, v)},
			}})
			_, secret = mappingWait(t, ns, "token", nil, mappingRef(id, v))
		})
		if got := secret.Data["token"]; string(got) != token {
			t.Errorf("token: %d bytes that are not the stored value (%d bytes)", len(got), len(token))
		}
		mappingExactKeys(t, secret, "token")
		mappingDigestsOnly(t, secret)
	})

	t.Run("kubernetes.io/tls from one JSON secret", func(t *testing.T) {
		const id = "e2e/mapping-recipes/tls"
		certPEM, keyPEM := mappingSelfSigned(t, "mapping-recipes.example.internal")
		content, err := json.Marshal(map[string]string{"cert": string(certPEM), "key": string(keyPEM)})
		if err != nil {
			t.Fatal(err)
		}
		v := createSecret(t, id, string(content))
		var secret *corev1.Secret
		costs(t, id, func() {
			mappingCreate(t, ns, "tls", v1alpha1.AWSSecretSpec{
				Type: corev1.SecretTypeTLS,
				Data: []v1alpha1.DataEntry{
					{Key: corev1.TLSCertKey, SecretsManagerSecretRef: mappingRef(id, v), Property: "cert"},
					{Key: corev1.TLSPrivateKeyKey, SecretsManagerSecretRef: mappingRef(id, v), Property: "key"},
				},
			})
			// Two entries pin one version: the status lists it once.
			_, secret = mappingWait(t, ns, "tls", nil, mappingRef(id, v))
		})
		if secret.Type != corev1.SecretTypeTLS {
			t.Errorf("Secret type = %s, want %s", secret.Type, corev1.SecretTypeTLS)
		}
		mappingExactKeys(t, secret, corev1.TLSCertKey, corev1.TLSPrivateKeyKey)
		if !bytes.Equal(secret.Data[corev1.TLSCertKey], certPEM) || !bytes.Equal(secret.Data[corev1.TLSPrivateKeyKey], keyPEM) {
			t.Errorf("tls.crt (%d bytes) or tls.key (%d bytes) differ from the stored PEM (%d, %d bytes)",
				len(secret.Data[corev1.TLSCertKey]), len(secret.Data[corev1.TLSPrivateKeyKey]), len(certPEM), len(keyPEM))
		}
		if _, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey]); err != nil {
			t.Errorf("the Secret's tls.crt and tls.key are not a usable pair: %v", err)
		}
		mappingDigestsOnly(t, secret)
		// The private key is not a newValue, so the suite's leak check would not look for it.
		mappingNoPEMInLog(t, p, keyPEM)
	})

	t.Run("DATABASE_URL template, Replace", func(t *testing.T) {
		const id = "e2e/mapping-recipes/db"
		// '@' and '/' would end the userinfo of the URL unless escaped.
		password := "p@ss/" + newValue("db-password")
		v := createSecret(t, id, fmt.Sprintf(`{"username":"app","password":%q,"host":"db.mapping.internal","port":5432}`, password))
		var secret *corev1.Secret
		costs(t, id, func() {
			mappingCreate(t, ns, "db", v1alpha1.AWSSecretSpec{
				StringDataFrom: &v1alpha1.DataSource{SecretsManagerSecretRef: mappingRef(id, v)},
				Template: &v1alpha1.SecretTemplate{
					MergePolicy: v1alpha1.MergePolicyReplace,
					Data: map[string]string{
						"DATABASE_URL": "postgres://{{ .username }}:{{ urlEscape .password }}@{{ .host }}:{{ .port }}/app?sslmode=require",
					},
				},
			})
			ref := mappingRef(id, v)
			_, secret = mappingWait(t, ns, "db", &ref)
		})
		// newValue's part of the password is letters, digits and '-', which stay as they are.
		escaped := strings.NewReplacer("@", "%40", "/", "%2F").Replace(password)
		want := "postgres://app:" + escaped + "@db.mapping.internal:5432/app?sslmode=require"
		mappingExactKeys(t, secret, "DATABASE_URL")
		if got := string(secret.Data["DATABASE_URL"]); got != want {
			t.Errorf("DATABASE_URL: %d bytes, sha256 %s; want %d bytes, sha256 %s", len(got), mappingSum([]byte(got)), len(want), mappingSum([]byte(want)))
		}
	})

	t.Run("binary secret whole", func(t *testing.T) {
		const id = "e2e/mapping-recipes/binary"
		// Not UTF-8 (0xff, 0xfe and a lone continuation byte), with a remembered value inside so
		// that the suite's leak check looks for it, and random bytes.
		blob := append([]byte{0xff, 0xfe, 0x00, 0x80}, newValue("binary")...)
		random := make([]byte, 64)
		if _, err := rand.Read(random); err != nil {
			t.Fatal(err)
		}
		blob = append(blob, random...)
		out, err := sm.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
			Name: aws.String(id), SecretBinary: blob,
		})
		if err != nil {
			t.Fatalf("CreateSecret %s with SecretBinary: %v", id, err)
		}
		v := aws.ToString(out.VersionId)
		var secret *corev1.Secret
		costs(t, id, func() {
			mappingCreate(t, ns, "binary", v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{
				{Key: "blob.bin", SecretsManagerSecretRef: mappingRef(id, v)},
			}})
			_, secret = mappingWait(t, ns, "binary", nil, mappingRef(id, v))
		})
		mappingExactKeys(t, secret, "blob.bin")
		if got := secret.Data["blob.bin"]; !bytes.Equal(got, blob) {
			t.Errorf("blob.bin: %d bytes, sha256 %s; want %d bytes, sha256 %s", len(got), mappingSum(got), len(blob), mappingSum(blob))
		}
		mappingDigestsOnly(t, secret)
	})

	t.Run("many entries, two digests", func(t *testing.T) {
		// Five entries over three versions of two secrets: the status lists the three versions
		// sorted, the Secret still carries two digests.
		const a, b = "e2e/mapping-recipes/many-a", "e2e/mapping-recipes/many-b"
		a1 := createSecret(t, a, fmt.Sprintf(`{"x":%q,"nested":{"y":%q},"dotted.name":%q}`, newValue("x"), newValue("y"), newValue("dotted")))
		a2 := putSecretValue(t, a, fmt.Sprintf(`{"x":%q}`, newValue("x2")))
		b1 := createSecret(t, b, newValue("b"))
		mappingCreate(t, ns, "many", v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{
			{Key: "b", SecretsManagerSecretRef: mappingRef(b, b1)},
			{Key: "x1", SecretsManagerSecretRef: mappingRef(a, a1), Property: "x"},
			{Key: "y", SecretsManagerSecretRef: mappingRef(a, a1), Property: "nested.y"},
			{Key: "dotted", SecretsManagerSecretRef: mappingRef(a, a1), Property: `dotted\.name`},
			{Key: "x2", SecretsManagerSecretRef: mappingRef(a, a2), Property: "x"},
		}})
		want := mappingSorted(mappingRef(b, b1), mappingRef(a, a2), mappingRef(a, a1))
		_, secret := mappingWait(t, ns, "many", nil, want...)
		mappingExactKeys(t, secret, "b", "x1", "y", "dotted", "x2")
		for _, key := range []string{"y", "dotted"} {
			if len(secret.Data[key]) == 0 {
				t.Errorf("%s is empty", key)
			}
		}
		mappingDigestsOnly(t, secret)
		for k, v := range secret.Annotations {
			if strings.Contains(v, a) || strings.Contains(v, b) || strings.Contains(v, a1) {
				t.Errorf("annotation %s names a secret id or version: the entries should be recorded as a digest", k)
			}
		}
	})
}

// TestMappingBumpOneEntryCostsOneCall: bumping one data entry's versionId reads only the new
// version; a restarted controller reads nothing for a Secret that holds what its AWSSecret asks
// for; a template change re-renders the Secret from the pinned versions.
func TestMappingBumpOneEntryCostsOneCall(t *testing.T) {
	ns := newNamespace(t, "mapping-bump")
	const db, tok = "e2e/mapping-bump/db", "e2e/mapping-bump/token"
	password1, password2, token := newValue("bump-password"), newValue("bump-password"), newValue("bump-token")
	db1 := createSecret(t, db, fmt.Sprintf(`{"username":"app","password":%q}`, password1))
	tok1 := createSecret(t, tok, token)
	p := startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	emulatorBefore := emulatorCalls(t)
	mappingCreate(t, ns, "app", v1alpha1.AWSSecretSpec{
		Data: []v1alpha1.DataEntry{
			{Key: "username", SecretsManagerSecretRef: mappingRef(db, db1), Property: "username"},
			{Key: "password", SecretsManagerSecretRef: mappingRef(db, db1), Property: "password"},
			{Key: "token", SecretsManagerSecretRef: mappingRef(tok, tok1)},
		},
		Template: &v1alpha1.SecretTemplate{
			MergePolicy: v1alpha1.MergePolicyMerge,
			Data:        map[string]string{"auth": "{{ .username }}:{{ .password }}"},
		},
	})
	_, first := mappingWait(t, ns, "app", nil, mappingSorted(mappingRef(db, db1), mappingRef(tok, tok1))...)
	mappingExactKeys(t, first, "username", "password", "token", "auth")
	if string(first.Data["auth"]) != "app:"+password1 || string(first.Data["token"]) != token {
		t.Errorf("first sync: auth (%d bytes) or token (%d bytes) is not what the versions hold", len(first.Data["auth"]), len(first.Data["token"]))
	}
	if got := p.awsCalls(t); got != 2 {
		t.Errorf("GetSecretValue calls for three entries over two versions = %d, want 2", got)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 2 {
		t.Errorf("emulator saw %d GetSecretValue calls for two versions, want 2", got)
	}

	// Bump the password entry alone: the username entry stays on db1, so the Secret now holds
	// three versions, of which only db2 is new.
	db2 := putSecretValue(t, db, fmt.Sprintf(`{"username":"app","password":%q}`, password2))
	metricsBefore, emulatorBefore := p.awsCalls(t), emulatorCalls(t)
	mappingJSONPatch(t, ns, "app", fmt.Sprintf(`[
		{"op":"test","path":"/spec/data/1/key","value":"password"},
		{"op":"replace","path":"/spec/data/1/secretsManagerSecretRef/versionId","value":%q}]`, db2))
	_, bumped := mappingWait(t, ns, "app", nil, mappingSorted(mappingRef(db, db1), mappingRef(db, db2), mappingRef(tok, tok1))...)
	if string(bumped.Data["password"]) != password2 || string(bumped.Data["auth"]) != "app:"+password2 {
		t.Errorf("after the bump: password (%d bytes) or auth (%d bytes) is not the new version's", len(bumped.Data["password"]), len(bumped.Data["auth"]))
	}
	if string(bumped.Data["username"]) != "app" || string(bumped.Data["token"]) != token {
		t.Errorf("after the bump: username or token changed")
	}
	if got := p.awsCalls(t) - metricsBefore; got != 1 {
		t.Errorf("GetSecretValue calls for the bump by /metrics = %d, want 1", got)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 1 {
		t.Errorf("GetSecretValue calls for the bump by the emulator's log = %d, want 1", got)
	}
	if bumped.Annotations[controller.AnnotationDataVersions] == first.Annotations[controller.AnnotationDataVersions] {
		t.Errorf("the data-versions digest did not change with the versions")
	}

	// Restart: the Secret holds what the AWSSecret asks for, so the new process reads nothing.
	p.stop(t)
	restarted := restartCostsNothing(t, ns, 1)

	// Change only the template. The Secret's data are rendered, not the versions themselves, so
	// a new rendering needs the versions' content: the restarted process has an empty version
	// cache, so it reads each distinct pinned version once (db1, db2, tok1), however many
	// entries pin it. The process that read them would have rendered from its cache.
	emulatorBefore = emulatorCalls(t)
	patchAWSSecret(t, ns, "app", `{"spec":{"template":{"data":{"auth":"{{ .username }}/{{ .password | upper }}"}}}}`)
	a, rerendered := mappingWait(t, ns, "app", nil, mappingSorted(mappingRef(db, db1), mappingRef(db, db2), mappingRef(tok, tok1))...)
	if a.Generation <= 2 {
		t.Errorf("generation %d: the template change was not a new generation", a.Generation)
	}
	if want := "app/" + strings.ToUpper(password2); string(rerendered.Data["auth"]) != want {
		t.Errorf("after the template change auth has %d bytes that are not the new rendering (%d bytes)", len(rerendered.Data["auth"]), len(want))
	}
	mappingExactKeys(t, rerendered, "username", "password", "token", "auth")
	if rerendered.UID != bumped.UID {
		t.Errorf("the Secret was replaced (uid %s→%s), want it updated", bumped.UID, rerendered.UID)
	}
	const distinctVersions = 3
	if got := restarted.awsCalls(t); got != distinctVersions {
		t.Errorf("GetSecretValue calls for a template change after restart = %d, want %d (one per distinct version)", got, distinctVersions)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != distinctVersions {
		t.Errorf("emulator saw %d GetSecretValue calls for the template change, want %d", got, distinctVersions)
	}
	if rerendered.Annotations[controller.AnnotationMapping] == bumped.Annotations[controller.AnnotationMapping] {
		t.Errorf("the mapping digest did not change with the template")
	}
	if rerendered.Annotations[controller.AnnotationDataVersions] != bumped.Annotations[controller.AnnotationDataVersions] {
		t.Errorf("the data-versions digest changed though no version did")
	}

	// The same template change again, now with a warm cache: no call.
	metricsBefore, emulatorBefore = restarted.awsCalls(t), emulatorCalls(t)
	patchAWSSecret(t, ns, "app", `{"spec":{"template":{"data":{"auth":"{{ .username }}={{ .password }}"}}}}`)
	_, again := mappingWait(t, ns, "app", nil, mappingSorted(mappingRef(db, db1), mappingRef(db, db2), mappingRef(tok, tok1))...)
	if want := "app=" + password2; string(again.Data["auth"]) != want {
		t.Errorf("after the second template change auth has %d bytes that are not the new rendering (%d bytes)", len(again.Data["auth"]), len(want))
	}
	if got := restarted.awsCalls(t) - metricsBefore; got != 0 {
		t.Errorf("GetSecretValue calls for a template change with a warm cache = %d, want 0", got)
	}
	if got := emulatorCalls(t) - emulatorBefore; got != 0 {
		t.Errorf("emulator saw %d GetSecretValue calls for a template change with a warm cache, want 0", got)
	}
}

// TestMappingErrors breaks a synced AWSSecret's data entries or template in each way the
// mapping can fail: the reason is reported, in a message and events that hold no value, and the
// Secret stays exactly as it was.
func TestMappingErrors(t *testing.T) {
	ns := newNamespace(t, "mapping-errors")
	const id = "e2e/mapping-errors/db"
	password := newValue("errors-password")
	v := createSecret(t, id, fmt.Sprintf(`{"username":"app","password":%q}`, password))
	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	good := v1alpha1.AWSSecretSpec{
		Data: []v1alpha1.DataEntry{
			{Key: "username", SecretsManagerSecretRef: mappingRef(id, v), Property: "username"},
			{Key: "password", SecretsManagerSecretRef: mappingRef(id, v), Property: "password"},
		},
		Template: &v1alpha1.SecretTemplate{
			MergePolicy: v1alpha1.MergePolicyReplace,
			Data:        map[string]string{"url": "https://{{ .username }}:{{ urlEscape .password }}@api.example.internal"},
		},
	}
	tests := map[string]struct {
		// patch breaks the synced AWSSecret (a JSON merge patch).
		patch      string
		wantReason string
		// wantInMessage are parts of the Ready message.
		wantInMessage []string
	}{
		"missing property": {
			patch:         `{"spec":{"data":[{"key":"username","secretsManagerSecretRef":{"secretId":"` + id + `","versionId":"` + v + `"},"property":"username"},{"key":"password","secretsManagerSecretRef":{"secretId":"` + id + `","versionId":"` + v + `"},"property":"passwrd"}]}}`,
			wantReason:    v1alpha1.ReasonPropertyNotFound,
			wantInMessage: []string{`"passwrd"`, `"password"`},
		},
		"template names a missing key": {
			patch:         `{"spec":{"template":{"data":{"url":"https://{{ .username }}:{{ .pasword }}@api.example.internal"}}}}`,
			wantReason:    v1alpha1.ReasonInvalidTemplate,
			wantInMessage: []string{`"url" at line 1, column 27`, "it names a key the gathered data does not have"},
		},
		// text/template's own error for eq of two maps prints both, values and all: the
		// controller's message is built from the key, the position and the kind of failure.
		"render error that would quote a value": {
			patch:         `{"spec":{"template":{"data":{"url":"{{ eq . $ }}"}}}}`,
			wantReason:    v1alpha1.ReasonInvalidTemplate,
			wantInMessage: []string{`"url" at line 1, column 3`, "a value has a type the function does not take"},
		},
		// A range over a value (whose error would quote it) is refused before it runs.
		"range over a value": {
			patch:         `{"spec":{"template":{"data":{"url":"{{ range .password }}x{{ end }}"}}}}`,
			wantReason:    v1alpha1.ReasonInvalidTemplate,
			wantInMessage: []string{`"url"`, "range may only go over the gathered keys"},
		},
		"template does not parse": {
			patch:         `{"spec":{"template":{"data":{"url":"{{ .username "}}}}`,
			wantReason:    v1alpha1.ReasonInvalidTemplate,
			wantInMessage: []string{`"url"`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			objName := strings.ReplaceAll(name, " ", "-")
			mappingCreate(t, ns, objName, good)
			_, synced := mappingWait(t, ns, objName, nil, mappingRef(id, v))
			if want := "https://app:" + password + "@api.example.internal"; string(synced.Data["url"]) != want {
				t.Fatalf("url: %d bytes that are not the rendering (%d bytes)", len(synced.Data["url"]), len(want))
			}

			patchAWSSecret(t, ns, objName, tc.patch)
			waitReason(t, ns, objName, tc.wantReason)
			a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), objName, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
			shown := fmt.Sprintf("(%d bytes, not shown: it holds a value)", len(cond.Message))
			if mappingNoValues(t, "the Ready message", cond.Message) {
				shown = fmt.Sprintf("%q", cond.Message)
			}
			for _, want := range tc.wantInMessage {
				if !strings.Contains(cond.Message, want) {
					t.Errorf("the Ready message %s does not say %s", shown, want)
				}
			}
			if !slices.Equal(a.Status.Data, []v1alpha1.SecretsManagerSecretRef{mappingRef(id, v)}) {
				t.Errorf("status.data = %v, want the version the Secret still holds", a.Status.Data)
			}

			now := getSecret(t, ns, objName)
			if now.UID != synced.UID || now.ResourceVersion != synced.ResourceVersion {
				t.Errorf("the Secret changed: uid %s→%s, resourceVersion %s→%s", synced.UID, now.UID, synced.ResourceVersion, now.ResourceVersion)
			}
			eventually(t, 10*time.Second, "a Warning event "+tc.wantReason, func() (bool, string) {
				return hasEvent(t, ns, objName, corev1.EventTypeWarning, tc.wantReason), "no event yet"
			})
			for _, msg := range mappingEventMessages(t, ns, objName) {
				mappingNoValues(t, "an event message", msg)
			}
		})
	}

	t.Run("missing property on a new AWSSecret", func(t *testing.T) {
		mappingCreate(t, ns, "new-missing-property", v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{
			{Key: "password", SecretsManagerSecretRef: mappingRef(id, v), Property: "credentials.password"},
		}})
		waitReason(t, ns, "new-missing-property", v1alpha1.ReasonPropertyNotFound)
		a, err := client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), "new-missing-property", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if mappingNoValues(t, "the Ready message", cond.Message) && !strings.Contains(cond.Message, "credential") {
			t.Errorf("the Ready message %q does not name the property", cond.Message)
		}
		if len(a.Status.Data) != 0 {
			t.Errorf("status.data = %v, want none: no Secret was written", a.Status.Data)
		}
		if _, err := kube.CoreV1().Secrets(ns).Get(context.Background(), "new-missing-property", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a Secret exists for an AWSSecret that never synced (err %v)", err)
		}
	})
}

// TestCRDValidatesMapping sends data entries and templates the CRD schema must refuse, one that
// it must accept, and shows the accepted one in kubectl's table.
func TestCRDValidatesMapping(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "mapping-crd")
	const id = "e2e/mapping-crd/token"
	v := createSecret(t, id, newValue("crd-token"))
	startController(t, "controller", env.Kubeconfig, nil, "--namespace", ns)

	entry := func(key string) v1alpha1.DataEntry {
		return v1alpha1.DataEntry{Key: key, SecretsManagerSecretRef: mappingRef(id, v)}
	}
	tests := map[string]struct {
		spec v1alpha1.AWSSecretSpec
		// wantMessage are parts of the API server's answer.
		wantMessage []string
	}{
		"duplicate data keys": {
			spec:        v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{entry("a"), entry("b"), entry("a")}},
			wantMessage: []string{"spec.data[2]", "Duplicate value"},
		},
		"invalid data key": {
			spec:        v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{entry("a b")}},
			wantMessage: []string{"spec.data[0].key", "should match"},
		},
		"data key ..": {
			spec:        v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{entry("..x")}},
			wantMessage: []string{"spec.data[0].key", "may not be '.' or '..'"},
		},
		"decode Gzip": {
			spec: v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{{
				Key: "a", SecretsManagerSecretRef: mappingRef(id, v), Decode: "Gzip",
			}}},
			wantMessage: []string{"spec.data[0].decode", `Unsupported value: "Gzip"`},
		},
		"template key with a space": {
			spec: v1alpha1.AWSSecretSpec{
				Data:     []v1alpha1.DataEntry{entry("a")},
				Template: &v1alpha1.SecretTemplate{Data: map[string]string{"bad key": "{{ .a }}"}},
			},
			wantMessage: []string{"spec.template.data", "every template key must be a valid Secret key"},
		},
		"mergePolicy Sometimes": {
			spec: v1alpha1.AWSSecretSpec{
				Data:     []v1alpha1.DataEntry{entry("a")},
				Template: &v1alpha1.SecretTemplate{MergePolicy: "Sometimes", Data: map[string]string{"b": "{{ .a }}"}},
			},
			wantMessage: []string{"spec.template.mergePolicy", `Unsupported value: "Sometimes"`},
		},
		"only a template": {
			spec: v1alpha1.AWSSecretSpec{
				Template: &v1alpha1.SecretTemplate{Data: map[string]string{"b": "static"}},
			},
			wantMessage: []string{"at least one of stringDataFrom, dataFrom or data is required"},
		},
		"a version stage in a data entry": {
			spec: v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{{
				Key: "a", SecretsManagerSecretRef: mappingRef(id, "AWSCURRENT"),
			}}},
			wantMessage: []string{"spec.data[0].secretsManagerSecretRef.versionId"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(ctx, &v1alpha1.AWSSecret{
				ObjectMeta: metav1.ObjectMeta{Name: "invalid"},
				Spec:       tc.spec,
			}, metav1.CreateOptions{})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("err = %v, want Invalid", err)
			}
			for _, want := range tc.wantMessage {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %q, want it to say %q", err, want)
				}
			}
		})
	}

	t.Run("data only: accepted, and shown by kubectl", func(t *testing.T) {
		mappingCreate(t, ns, "data-only", v1alpha1.AWSSecretSpec{Data: []v1alpha1.DataEntry{entry("token")}})
		mappingWait(t, ns, "data-only", nil, mappingRef(id, v))
		table := kubectl(t, "", "get", "awssecrets", "-n", ns)
		for column, want := range map[string]string{"DATA[0]SECRETID": id, "READY": "True", "REASON": "Synced"} {
			if got := mappingColumn(t, table, "data-only", column); got != want {
				t.Errorf("kubectl get awssecrets: column %s of data-only = %q, want %q:\n%s", column, got, want, table)
			}
		}
		if got := mappingColumn(t, kubectl(t, "", "get", "awssecrets", "-n", ns, "-o", "wide"), "data-only", "DATA[0]VERSIONID"); got != v {
			t.Errorf("kubectl get awssecrets -o wide: DATA[0]VERSIONID of data-only = %q, want %q", got, v)
		}
	})
}

// mappingRef names one version.
func mappingRef(secretID, versionID string) v1alpha1.SecretsManagerSecretRef {
	return v1alpha1.SecretsManagerSecretRef{SecretID: secretID, VersionID: versionID}
}

// mappingSorted sorts versions as status.data lists them: by secretId, then versionId.
func mappingSorted(refs ...v1alpha1.SecretsManagerSecretRef) []v1alpha1.SecretsManagerSecretRef {
	slices.SortFunc(refs, func(a, b v1alpha1.SecretsManagerSecretRef) int {
		if c := strings.Compare(a.SecretID, b.SecretID); c != 0 {
			return c
		}
		return strings.Compare(a.VersionID, b.VersionID)
	})
	return refs
}

// mappingCreate creates an AWSSecret.
func mappingCreate(t *testing.T, ns, name string, spec v1alpha1.AWSSecretSpec) {
	t.Helper()
	if _, err := client.MumoshuV1alpha1().AWSSecrets(ns).Create(context.Background(), &v1alpha1.AWSSecret{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       spec,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating AWSSecret %s/%s: %v", ns, name, err)
	}
}

// mappingJSONPatch applies a JSON patch (RFC 6902) to an AWSSecret.
func mappingJSONPatch(t *testing.T, ns, name, patch string) {
	t.Helper()
	if _, err := client.MumoshuV1alpha1().AWSSecrets(ns).Patch(context.Background(), name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patching AWSSecret %s/%s: %v", ns, name, err)
	}
}

// mappingWait waits until an AWSSecret is Ready for its current generation, holding
// stringDataFrom (nil for none) and, in status.data, exactly the versions data, then returns it
// and its Secret. The status is written after the Secret, so the Secret returned is the one
// rendered for that generation.
func mappingWait(t *testing.T, ns, name string, stringDataFrom *v1alpha1.SecretsManagerSecretRef, data ...v1alpha1.SecretsManagerSecretRef) (*v1alpha1.AWSSecret, *corev1.Secret) {
	t.Helper()
	var a *v1alpha1.AWSSecret
	var secret *corev1.Secret
	eventually(t, 30*time.Second, fmt.Sprintf("%s/%s Ready with data %v", ns, name, data), func() (bool, string) {
		var err error
		if a, err = client.MumoshuV1alpha1().AWSSecrets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		cond := meta.FindStatusCondition(a.Status.Conditions, v1alpha1.ConditionReady)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != a.Generation || a.Status.ObservedGeneration != a.Generation {
			return false, fmt.Sprintf("generation %d, status %+v", a.Generation, a.Status)
		}
		if !slices.Equal(a.Status.Data, data) {
			return false, fmt.Sprintf("status.data %v", a.Status.Data)
		}
		if !equalRefPtr(a.Status.StringDataFrom, stringDataFrom) {
			return false, fmt.Sprintf("status.stringDataFrom %v", a.Status.StringDataFrom)
		}
		if secret, err = kube.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	return a, secret
}

func equalRefPtr(a, b *v1alpha1.SecretsManagerSecretRef) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// mappingExactKeys fails unless the Secret holds exactly keys.
func mappingExactKeys(t *testing.T, secret *corev1.Secret, keys ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(secret.Data))
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Errorf("Secret %s has keys %v, want exactly %v", secret.Name, got, want)
	}
}

// mappingDigestsOnly fails unless the controller's marks on the Secret of a data-only AWSSecret
// are the data-versions and mapping digests and the data hash, whatever the number of entries.
func mappingDigestsOnly(t *testing.T, secret *corev1.Secret) {
	t.Helper()
	var mine []string
	for k := range secret.Annotations {
		if strings.HasPrefix(k, controller.AnnotationPrefix) {
			mine = append(mine, k)
		}
	}
	slices.Sort(mine)
	want := slices.Sorted(slices.Values([]string{controller.AnnotationDataVersions, controller.AnnotationMapping, controller.AnnotationDataHash}))
	if !slices.Equal(mine, want) {
		t.Errorf("the controller's annotations on %s are %v, want exactly %v", secret.Name, mine, want)
	}
	for _, k := range []string{controller.AnnotationDataVersions, controller.AnnotationMapping} {
		if v := secret.Annotations[k]; !strings.HasPrefix(v, "sha256:") || len(v) != len("sha256:")+64 {
			t.Errorf("annotation %s = %q, want a sha256 digest", k, v)
		}
	}
}

// mappingNoValues fails when s contains any value the suite stored, and says whether s is
// free of them, so that the caller may print it; it never prints a value.
func mappingNoValues(t *testing.T, what, s string) bool {
	t.Helper()
	clean := true
	for _, v := range allSecretValues() {
		if strings.Contains(s, v) {
			t.Errorf("%s (%d bytes) contains a stored value (%d bytes, sha256 %s)", what, len(s), len(v), mappingSum([]byte(v)))
			clean = false
		}
	}
	return clean
}

// mappingEventMessages returns the messages of every event about an AWSSecret.
func mappingEventMessages(t *testing.T, ns, name string) []string {
	t.Helper()
	events, err := kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "AWSSecret" && e.InvolvedObject.Name == name {
			msgs = append(msgs, e.Message)
		}
	}
	if len(msgs) == 0 {
		t.Errorf("no event about %s/%s: the check for values in events would prove nothing", ns, name)
	}
	return msgs
}

// mappingSum is a short digest to name a value in a message without printing it.
func mappingSum(b []byte) string {
	sum := sha256.Sum256(b)
	return fmt.Sprintf("%x", sum[:6])
}

// mappingSelfSigned returns a self-signed ECDSA P-256 certificate for host and its private key,
// both PEM-encoded.
func mappingSelfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// mappingNoPEMInLog fails when any line of a PEM block's body shows up in the controller's log.
func mappingNoPEMInLog(t *testing.T, p *controllerProcess, block []byte) {
	t.Helper()
	log := p.log(t)
	if len(log) == 0 {
		t.Fatalf("%s logged nothing: the check would prove nothing", p.Name)
	}
	for _, line := range strings.Split(string(block), "\n") {
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(log, line) {
			t.Errorf("%s's log contains a line of the private key (sha256 %s)", p.Name, mappingSum([]byte(line)))
		}
	}
}

// mappingColumn returns the cell of kubectl's table in column header for the row named name.
// kubectl aligns cells under their headers, so a cell starts where its header does.
func mappingColumn(t *testing.T, table, name, header string) string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) < 2 {
		t.Fatalf("kubectl printed no rows:\n%s", table)
	}
	head := lines[0]
	start := strings.Index(head, header)
	if start < 0 {
		t.Fatalf("kubectl's table has no column %s:\n%s", header, table)
	}
	for _, row := range lines[1:] {
		if fields := strings.Fields(row); len(fields) == 0 || fields[0] != name {
			continue
		}
		if start >= len(row) {
			return ""
		}
		cell := row[start:]
		if i := strings.IndexAny(cell, " \t"); i >= 0 {
			cell = cell[:i]
		}
		return cell
	}
	t.Fatalf("kubectl's table has no row %s:\n%s", name, table)
	return ""
}
