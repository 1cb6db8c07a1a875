// Package awssm reads pinned versions of AWS Secrets Manager secrets: the small part of the
// Secrets Manager API the controller uses, a constructor for the SDK client, a cache of versions
// and the classification of AWS errors into the reasons an AWSSecret's status reports.
package awssm

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// API is the part of the Secrets Manager API the controller calls: GetSecretValue with both a
// SecretId and a VersionId, never a version stage. *secretsmanager.Client satisfies it; tests
// use a fake.
type API interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Version is the content of one version of a secret. Exactly one of String and Binary is set.
// It holds secret material: never log or print it.
type Version struct {
	// String is SecretString, when the version was stored as a string.
	String *string
	// Binary is SecretBinary, when the version was stored as binary.
	Binary []byte
}

// Bytes returns the version's content, whichever form it was stored in.
func (v Version) Bytes() []byte {
	if v.String != nil {
		return []byte(*v.String)
	}
	return v.Binary
}

func (v Version) size() int {
	if v.String != nil {
		return len(*v.String)
	}
	return len(v.Binary)
}

// AppID identifies the controller's calls in AWS's records.
const AppID = "aws-secret-controller"

// Config says how to reach Secrets Manager. Credentials come from the SDK's default chain
// (environment, shared files, IRSA web identity, EKS Pod Identity, instance metadata).
type Config struct {
	// Region is the AWS region; empty means the SDK's default (AWS_REGION, shared config).
	Region string
	// Endpoint overrides the Secrets Manager endpoint, e.g. for an emulator. Empty means the
	// SDK's resolution, which also honours AWS_ENDPOINT_URL_SECRETS_MANAGER.
	Endpoint string
	// AppID names the program in the User-Agent of its calls; empty means AppID.
	AppID string
	// Pacer, if set, paces the attempts of every Secrets Manager client made from this
	// Config, role clients included.
	Pacer *Pacer
	// OnAssumeRole, if set, is told the result of every AssumeRole call the role clients make:
	// "success" or the error's reason.
	OnAssumeRole func(result string)
}

func (cfg Config) appID() string {
	if cfg.AppID != "" {
		return cfg.AppID
	}
	return AppID
}

// LoadConfig loads the SDK's default configuration (credentials, region, endpoints from the
// environment such as AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL_STS).
func LoadConfig(ctx context.Context, cfg Config) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set --aws-region or AWS_REGION")
	}
	// Shows as app/aws-secret-controller in the User-Agent of every AWS call (STS included), so
	// the calls can be told apart in CloudTrail and emulator logs.
	awsCfg.AppID = cfg.appID()
	return awsCfg, nil
}

// NewClient returns a Secrets Manager client for an SDK configuration.
func NewClient(awsCfg aws.Config, cfg Config) *secretsmanager.Client {
	return secretsmanager.NewFromConfig(awsCfg, cfg.clientOptions)
}

func (cfg Config) clientOptions(o *secretsmanager.Options) {
	o.AppID = cfg.appID()
	if cfg.Endpoint != "" {
		o.BaseEndpoint = aws.String(cfg.Endpoint)
	}
	if cfg.Pacer != nil && o.Retryer != nil {
		o.Retryer = cfg.Pacer.Wrap(o.Retryer)
	}
}

// New returns a Secrets Manager client built from the SDK's default configuration.
func New(ctx context.Context, cfg Config) (*secretsmanager.Client, error) {
	awsCfg, err := LoadConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewClient(awsCfg, cfg), nil
}

// get asks Secrets Manager for one version by id and classifies any error.
func get(ctx context.Context, api API, secretID, versionID string) (Version, error) {
	out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(secretID),
		VersionId: aws.String(versionID),
	})
	if err != nil {
		return Version{}, Classify(err, secretID, versionID)
	}
	switch {
	case out.SecretString != nil:
		return Version{String: out.SecretString}, nil
	case out.SecretBinary != nil:
		return Version{Binary: out.SecretBinary}, nil
	default:
		return Version{String: aws.String("")}, nil
	}
}
