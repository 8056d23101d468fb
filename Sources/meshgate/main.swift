print("meshgate")
