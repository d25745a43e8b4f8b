package kube

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/wardmesh/ward/ca"
)

// Defaults for the CA state Secret.
const (
	DefaultCASecret = "ward-ca"
	CAStateKey      = "ca.json"
)

// SecretStore keeps the CA State (root keys included) in one Secret, the
// same JSON document ca.FileStore writes. Save creates the Secret when it
// is missing and fails if another writer created it meanwhile, so root
// creation cannot race silently; later saves update it.
type SecretStore struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // default DefaultCASecret
}

var (
	_ ca.Store   = SecretStore{}
	_ ca.Updater = SecretStore{}
)

func (s SecretStore) name() string {
	if s.Name == "" {
		return DefaultCASecret
	}
	return s.Name
}

// Load reads the state; (nil, nil) when the Secret does not exist.
func (s SecretStore) Load(ctx context.Context) (*ca.State, error) {
	sec, err := s.Client.CoreV1().Secrets(s.Namespace).Get(ctx, s.name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load ca state secret %s/%s: %w", s.Namespace, s.name(), err)
	}
	var st ca.State
	if err := json.Unmarshal(sec.Data[CAStateKey], &st); err != nil {
		return nil, fmt.Errorf("load ca state secret %s/%s: %w", s.Namespace, s.name(), err)
	}
	return &st, nil
}

// Save writes the state.
func (s SecretStore) Save(ctx context.Context, st *ca.State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save ca state: %w", err)
	}
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, s.name(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = secrets.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: s.name(), Namespace: s.Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "ward"}},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{CAStateKey: b},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		cur.Data = map[string][]byte{CAStateKey: b}
		_, err = secrets.Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("save ca state secret %s/%s: %w", s.Namespace, s.name(), err)
	}
	return nil
}

// Update applies mutate to the state in the Secret and writes it back with
// the resourceVersion it read as precondition, re-reading and re-applying
// on a conflict, so concurrent writers (the leader's rotation, another
// replica's reservation) never undo each other. An error from mutate is
// returned as is, with nothing written.
func (s SecretStore) Update(ctx context.Context, mutate func(*ca.State) error) (*ca.State, error) {
	secrets := s.Client.CoreV1().Secrets(s.Namespace)
	var out *ca.State
	var mutateErr error
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := secrets.Get(ctx, s.name(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		var st ca.State
		if err := json.Unmarshal(cur.Data[CAStateKey], &st); err != nil {
			return err
		}
		if mutateErr = mutate(&st); mutateErr != nil {
			return nil
		}
		b, err := json.Marshal(&st)
		if err != nil {
			return err
		}
		cur.Data = map[string][]byte{CAStateKey: b}
		if _, err := secrets.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return err // a Conflict when the resourceVersion moved: retried
		}
		out = &st
		return nil
	})
	if mutateErr != nil {
		return nil, mutateErr
	}
	if err != nil {
		return nil, fmt.Errorf("update ca state secret %s/%s: %w", s.Namespace, s.name(), err)
	}
	return out, nil
}
