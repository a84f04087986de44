"""Reading files safely: content sniffing, the weights-only readers, the restricted unpickler.

The lowest room that touches files. It knows nothing of models: it tells what a file is
(:mod:`~normresnet_export.files.reading`), checks the layout of a ``torch.save`` file (zip or
legacy) against the file and a memory cap before anything is allocated
(:mod:`~normresnet_export.files.torch_layout`), reads tensors and plain data from it, names the
research code that wrote it (:mod:`~normresnet_export.files.recognise`), and reads the
tau-ResNet scripts' pickled model objects through an allowlist
(:mod:`~normresnet_export.files.safe_pickle`).
"""
