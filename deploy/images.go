package deploy

import (
	"fmt"

	"github.com/wardmesh/ward/release/image"
)

// Pin points every Ward image reference of v at the images `make images`
// built (its images.json, read with image.LoadManifest): the control
// plane's Deployment and the image its injector puts into pods both
// become repository@digest of the "ward" image.
func (v Values) Pin(m *image.Manifest) (Values, error) {
	ref, err := m.Lookup("ward")
	if err != nil {
		return Values{}, fmt.Errorf("images: %w", err)
	}
	v.Images.Ward = Image{Repository: ref.Repository, Tag: ref.Tag, Digest: ref.Digest}
	return v, nil
}
