package kube

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/wardmesh/ward/ca"
)

// NewCA builds the CA on state kept in store (a SecretStore). When the
// state does not exist yet, only the leader creates it: the other replicas
// wait, watching the Secret, until it appears, then load it. Every replica
// ends up with the same root and signs. cfg.Store is set to store.
func NewCA(ctx context.Context, store SecretStore, leader *Leader, cfg ca.Config) (*ca.CA, error) {
	cfg.Store = store
	for {
		st, err := store.Load(ctx)
		if err != nil {
			return nil, err
		}
		if st != nil || leader.IsLeader() {
			c, err := ca.New(cfg)
			if err == nil {
				return c, nil
			}
			if st != nil || ctx.Err() != nil {
				return nil, err
			}
			// Creation lost a race it should not have had (lease
			// expired mid-create); load what the winner wrote.
			continue
		}
		if err := waitForSecretOrLead(ctx, store, leader); err != nil {
			return nil, err
		}
	}
}

// waitForSecretOrLead returns when the state Secret is created or this
// replica becomes leader.
func waitForSecretOrLead(ctx context.Context, store SecretStore, leader *Leader) error {
	w, err := store.Client.CoreV1().Secrets(store.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", store.name()).String(),
	})
	if err != nil {
		return fmt.Errorf("watch ca state secret %s/%s: %w", store.Namespace, store.name(), err)
	}
	defer w.Stop()
	// The Secret may have appeared between Load and Watch.
	if st, err := store.Load(ctx); err != nil || st != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-leader.Elected():
		return nil
	case _, ok := <-w.ResultChan():
		if !ok {
			return nil // watch closed: the caller loads and retries
		}
		return nil
	}
}
