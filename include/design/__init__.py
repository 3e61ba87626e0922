"""Design image pipeline: batches, resize + perceptual hashes, near-duplicate detection, NAS,
database, mockups and Etsy listings (issue 9, seed ``001``)."""
