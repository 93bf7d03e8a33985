//go:build !(cgo && linux)

package sysstats

import "errors"

// openNVML needs cgo on Linux to load libnvidia-ml.
func openNVML() (GPUSource, error) {
	return nil, errors.New("built without cgo: NVML cannot be loaded")
}
