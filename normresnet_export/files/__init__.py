"""Reading files safely: content sniffing, the weights-only readers, the restricted unpickler.

The lowest room that touches files. It knows nothing of models: it tells what a file is
(:mod:`~normresnet_export.files.reading`), reads tensors and plain data from it, names the
research code that wrote it (:mod:`~normresnet_export.files.recognise`), and reads the
tau-ResNet scripts' pickled model objects through an allowlist
(:mod:`~normresnet_export.files.safe_pickle`).
"""
