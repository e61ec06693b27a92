package doctor

import "github.com/netloom/netloom/pkg/cnicache"

// attachment is one pod's attachment to one network as the runtime recorded it in libcni's result cache.
type attachment = cnicache.Entry

// cachedAttachments reads every attachment of the result cache, in file name order.
func cachedAttachments(cacheDir string) ([]attachment, error) {
	return cnicache.Read(cacheDir)
}
