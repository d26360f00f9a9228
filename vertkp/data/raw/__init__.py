"""Raw data as it is downloaded: archives and their checksums, safe extraction, ``vertkp download``,
the listing of source folders and where a converted image comes from."""
