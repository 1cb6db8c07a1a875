package bump

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"golang.org/x/sync/errgroup"

	"github.com/mumoshu/aws-secret-controller/pkg/awssm"
)

// Describer is the one Secrets Manager call the bump needs: DescribeSecret lists a secret's
// versions and their stages, and needs no right to read a value.
type Describer interface {
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
}

// Resolved is the version of one secret that holds the stage, or why it could not be found.
type Resolved struct {
	VersionID string
	Err       error
}

// Resolve asks Secrets Manager, with one DescribeSecret per distinct secret id and at most
// concurrency calls at a time, which version of each secret holds stage.
func Resolve(ctx context.Context, api Describer, secretIDs []string, stage string, concurrency int) map[string]Resolved {
	ids := map[string]bool{}
	for _, id := range secretIDs {
		ids[id] = true
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		sorted = append(sorted, id)
	}
	sort.Strings(sorted)

	var mu sync.Mutex
	out := make(map[string]Resolved, len(sorted))
	var g errgroup.Group
	g.SetLimit(max(concurrency, 1))
	for _, id := range sorted {
		g.Go(func() error {
			r := resolve(ctx, api, id, stage)
			mu.Lock()
			out[id] = r
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	return out
}

func resolve(ctx context.Context, api Describer, secretID, stage string) Resolved {
	if secretID == "" {
		return Resolved{Err: fmt.Errorf("the reference has no secretId")}
	}
	desc, err := api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(secretID)})
	if err != nil {
		// The same classification as the controller's: SecretNotFound, AccessDenied, ...
		if e, ok := awssm.Classify(err, secretID, "").(*awssm.Error); ok {
			return Resolved{Err: fmt.Errorf("%s: DescribeSecret %s: %w", e.Reason, secretID, err)}
		}
		return Resolved{Err: err}
	}
	var found []string
	for version, stages := range desc.VersionIdsToStages {
		for _, s := range stages {
			if s == stage {
				found = append(found, version)
			}
		}
	}
	switch len(found) {
	case 0:
		return Resolved{Err: fmt.Errorf("no version of secret %s has the stage %s", secretID, stage)}
	case 1:
		return Resolved{VersionID: found[0]}
	default:
		sort.Strings(found)
		return Resolved{Err: fmt.Errorf("versions %v of secret %s all have the stage %s", found, secretID, stage)}
	}
}
