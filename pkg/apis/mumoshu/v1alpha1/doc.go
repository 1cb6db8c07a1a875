// Package v1alpha1 is the v1alpha1 version of the mumoshu.github.io API: the AWSSecret kind,
// which pins a version of an AWS Secrets Manager secret that the controller copies into a Secret.
//
// +k8s:deepcopy-gen=package
// +groupName=mumoshu.github.io
package v1alpha1
