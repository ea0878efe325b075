from services.xero_sink.main import main

main()
