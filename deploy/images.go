package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
)

// ImageList is the manifest `make images` writes to
// _out/images/images.json: every built image with its digest.
type ImageList struct {
	Images []BuiltImage `json:"images"`
}

// BuiltImage is one entry of an ImageList.
type BuiltImage struct {
	Name       string `json:"name"` // "ward", "ward-agent"
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Digest     string `json:"digest"`
	Reference  string `json:"reference"` // repository@digest
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func validDigest(d string) bool { return digestRE.MatchString(d) }

// ReadImages reads and checks an images.json file.
func ReadImages(file string) (ImageList, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return ImageList{}, fmt.Errorf("read images: %w", err)
	}
	var l ImageList
	if err := json.Unmarshal(b, &l); err != nil {
		return ImageList{}, fmt.Errorf("images %s: %w", file, err)
	}
	for i, im := range l.Images {
		if im.Name == "" || im.Repository == "" || !validDigest(im.Digest) {
			return ImageList{}, fmt.Errorf("images %s: images[%d] (%q): want name, repository and a sha256 digest", file, i, im.Name)
		}
		if im.Reference != "" && im.Reference != im.Repository+"@"+im.Digest {
			return ImageList{}, fmt.Errorf("images %s: images[%d] (%q): reference %q is not repository@digest", file, i, im.Name, im.Reference)
		}
	}
	return l, nil
}

// Pin points every Ward image reference of v at the built images: the
// control plane's Deployment and the image its injector puts into pods
// both become repository@digest of the "ward" image.
func (v Values) Pin(l ImageList) (Values, error) {
	for _, im := range l.Images {
		if im.Name == "ward" {
			v.Images.Ward = Image{Repository: im.Repository, Tag: im.Tag, Digest: im.Digest}
			return v, nil
		}
	}
	return Values{}, fmt.Errorf("images: no image named \"ward\"")
}
